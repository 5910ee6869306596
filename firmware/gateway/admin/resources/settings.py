"""Settings: list, change (installer-locked ones: installer only), lock and unlock (R2-6)."""

from __future__ import annotations

from typing import Any

from firmware.core.errors import StateError
from firmware.gateway.admin import roles, settings
from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.web import Request, Response, error


class SettingsRoutes(AdminCore):
    """GET /api/settings, PUT /api/settings/{name}, POST /api/settings/{name}/lock."""

    def h_settings_list(self, req: Request, s: Session, _p: dict[str, str],
                        _b: Any) -> Response:
        """GET /api/settings."""
        out = {}
        for name, st in self.db.settings().items():
            decl = settings.SCHEMA.get(name, {})
            out[name] = {"value": st["value"], "locked": st["locked"],
                         "type": decl.get("type", "unknown"),
                         "writable": roles.allowed(s.role, "settings.write")
                         and (not st["locked"] or roles.allowed(s.role, "settings.write-locked"))}
        return Response(200, {"settings": out, "drift": self.drift()})

    def _setting(self, name: str) -> dict[str, Any]:
        st = self.db.settings().get(name)
        if st is None or name not in settings.SCHEMA:
            raise StateError("no such setting")
        return st

    def h_setting_put(self, req: Request, s: Session, p: dict[str, str], body: Any) -> Response:
        """PUT /api/settings/{name}."""
        name = p["name"]
        if name not in settings.SCHEMA:
            return error(404, "not-found", "no such setting")
        st = self._setting(name)
        if st["locked"] and not roles.allowed(s.role, "settings.write-locked"):
            self.event("admin.setting.denied", "notice", s.account, "set", name, "refused",
                       "installer-locked setting", source=self._source(s))
            return error(403, "locked", "this setting is locked by the installer")
        value = settings.validate(name, body["value"])
        self.db.put_setting(name, value, st["locked"], self.clock(), s.account)
        if st["locked"]:
            self._record_locks()
        self.event("admin.setting.changed", "notice", s.account, "set", name, "ok",
                   source=self._source(s), locked=st["locked"])
        return Response(200, {"name": name, "value": value, "locked": st["locked"]})

    def h_setting_lock(self, req: Request, s: Session, p: dict[str, str], body: Any) -> Response:
        """POST /api/settings/{name}/lock."""
        name = p["name"]
        if name not in settings.SCHEMA:
            return error(404, "not-found", "no such setting")
        st = self._setting(name)
        self.db.put_setting(name, st["value"], body["locked"], self.clock(), s.account)
        self._record_locks()
        self.event("admin.setting.locked" if body["locked"] else "admin.setting.unlocked",
                   "notice", s.account, "lock", name, "ok")
        return Response(200, {"name": name, "locked": body["locked"]})
