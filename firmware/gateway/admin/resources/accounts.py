"""Operator accounts: list, create (credential changed at first use), delete."""

from __future__ import annotations

from typing import Any

from firmware.gateway.admin import auth, roles
from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.web import Request, Response, error


class AccountRoutes(AdminCore):
    """GET and POST /api/accounts, DELETE /api/accounts/{name}."""

    def h_accounts_list(self, req: Request, s: Session, _p: dict[str, str],
                        _b: Any) -> Response:
        """GET /api/accounts."""
        accts = self.db.accounts()
        if self.creds.role_of(auth.INSTALLER_ACCOUNT):
            accts.insert(0, {"name": auth.INSTALLER_ACCOUNT, "role": roles.INSTALLER,
                             "created_by": "provisioning",
                             "must_change": self.creds.must_change(auth.INSTALLER_ACCOUNT)})
        return Response(200, {"accounts": accts})

    def h_account_create(self, req: Request, s: Session, _p: dict[str, str],
                         body: Any) -> Response:
        """POST /api/accounts."""
        self.create_account(body["name"], body["role"], body["password"], s.account)
        self.event("admin.account.created", "notice", s.account, "create-account",
                   body["name"], "ok", role=body["role"])
        return Response(200, {"name": body["name"], "role": body["role"], "must_change": True})

    def h_account_delete(self, req: Request, s: Session, p: dict[str, str], _b: Any) -> Response:
        """DELETE /api/accounts/{name}."""
        if p["name"] == auth.INSTALLER_ACCOUNT:
            return error(409, "state", "the provisioned installer account cannot be deleted")
        if not self.db.delete_account(p["name"]):
            return error(404, "not-found", "no such account")
        self.event("admin.account.deleted", "notice", s.account, "delete-account", p["name"],
                   "ok")
        return Response(204)
