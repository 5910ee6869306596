"""The admin API's route table: the single source for dispatch and the OpenAPI description."""

from __future__ import annotations

from typing import Any

NAME = {"type": "string", "pattern": r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "maxLength": 64}
SECRET = {"type": "string", "minLength": 1, "maxLength": 256}
_TEXT = {"type": "string", "maxLength": 256}


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


LOGIN = _obj({"account": NAME, "password": SECRET}, ["account", "password"])
INITIAL = _obj({"account": NAME, "old": SECRET, "new": SECRET}, ["account", "old", "new"])
CHANGE = _obj({"old": SECRET, "new": SECRET}, ["old", "new"])
SETTING = _obj({"value": {}}, ["value"])
LOCK = _obj({"locked": {"type": "boolean"}}, ["locked"])
ACCOUNT = _obj({"name": NAME, "role": {"type": "string",
                                       "enum": ["installer", "maintenance", "owner"]},
                "password": SECRET}, ["name", "role", "password"])
WINDOW = _obj({"minutes": {"type": "integer", "minimum": 1, "maximum": 240}}, ["minutes"])
PERSONAL = _obj({"name": _TEXT, "email": _TEXT, "phone": _TEXT, "address": _TEXT,
                 "notes": {"type": "string", "maxLength": 2048}}, [])
TRANSFER = _obj({"new_owner": NAME}, [])
COMMISSION = _obj({"level": {"type": "integer", "minimum": 2, "maximum": 3}}, [])


class Route:
    """One route: method, path template, permission (None = public), handler, body schema."""

    def __init__(self, method: str, path: str, permission: str | None, handler: str,
                 summary: str, body: dict[str, Any] | None = None) -> None:
        self.method = method
        self.path = path
        self.parts = path.strip("/").split("/")
        self.permission = permission
        self.handler = handler
        self.summary = summary
        self.body = body

    @property
    def state_changing(self) -> bool:
        """Whether the route changes state (CSRF protection applies)."""
        return self.method not in ("GET", "HEAD")

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """Path parameters when the segments fit the template, else None."""
        if len(parts) != len(self.parts):
            return None
        params = {}
        for want, got in zip(self.parts, parts, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


ROUTES: list[Route] = [
    Route("POST", "/api/login", None, "login",
          "Log in; returns the CSRF token and sets the session cookie", LOGIN),
    Route("POST", "/api/credential/initial", None, "change_initial",
          "Change a credential with the old one (the only use of an initial credential)",
          INITIAL),
    Route("POST", "/api/logout", "session.self", "logout", "End this session"),
    Route("GET", "/api/session", "session.self", "session_info", "This session's account"),
    Route("POST", "/api/credential", "session.self", "change_own",
          "Change this account's credential", CHANGE),
    Route("GET", "/api/status", "status.read", "status", "Gateway summary"),
    Route("GET", "/openapi.json", "openapi.read", "openapi", "This API description"),
    Route("GET", "/api/settings", "settings.read", "settings_list", "Every setting"),
    Route("PUT", "/api/settings/{name}", "settings.write", "setting_put",
          "Change a setting (installer-locked ones: installer only)", SETTING),
    Route("POST", "/api/settings/{name}/lock", "settings.lock", "setting_lock",
          "Lock or unlock a setting against the owner role", LOCK),
    Route("GET", "/api/accounts", "accounts.read", "accounts_list", "Operator accounts"),
    Route("POST", "/api/accounts", "accounts.manage", "account_create",
          "Create an operator account (credential must be changed at first use)", ACCOUNT),
    Route("DELETE", "/api/accounts/{name}", "accounts.manage", "account_delete",
          "Delete an operator account and its sessions"),
    Route("GET", "/api/maintenance/windows", "maintenance.grant", "windows_list",
          "Open maintenance windows"),
    Route("POST", "/api/maintenance/windows", "maintenance.grant", "window_open",
          "Open a time-boxed maintenance window", WINDOW),
    Route("DELETE", "/api/maintenance/windows", "maintenance.grant", "windows_close",
          "Close every window and end maintenance sessions"),
    Route("GET", "/api/diagnostics", "diagnostics.read", "diagnostics_list",
          "Diagnostic snapshots"),
    Route("POST", "/api/diagnostics", "diagnostics.create", "diagnostics_create",
          "Take a diagnostic snapshot"),
    Route("GET", "/api/diagnostics/{name}", "diagnostics.read", "diagnostics_get",
          "One diagnostic snapshot"),
    Route("GET", "/api/owner/data", "personal.read", "personal_get", "The owner's personal data"),
    Route("PUT", "/api/owner/data", "personal.write", "personal_put",
          "Replace the owner's personal data", PERSONAL),
    Route("DELETE", "/api/owner/data", "personal.delete", "personal_delete",
          "Delete my data (crypto-erase)"),
    Route("POST", "/api/ownership/transfer", "ownership.transfer", "transfer",
          "Transfer ownership: revoke every owner credential and token, rotate secrets",
          TRANSFER),
    Route("GET", "/api/devices", "status.read", "devices",
          "The gateway id, its LAN endpoint, every device's state and recent refusals"),
    Route("POST", "/api/commissioning", "commissioning.run", "commissioning_start",
          "Start the live commissioning self-test (signed and stored when all pass)",
          COMMISSION),
    Route("GET", "/api/commissioning", "commissioning.run", "commissioning_get",
          "The last commissioning self-test: running, done (signed report), refused or error"),
]
