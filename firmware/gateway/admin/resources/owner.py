"""The owner's rights: their personal data (read, replace, delete: a crypto-erase) and the
transfer of ownership (R2-4, R2-5)."""

from __future__ import annotations

from typing import Any

from firmware.common.passwords import new_credential
from firmware.gateway.admin import auth, roles
from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.personal import PersonalStore
from firmware.gateway.admin.transfer import transfer_ownership
from firmware.gateway.admin.web import Request, Response, error


class OwnerRoutes(AdminCore):
    """GET, PUT and DELETE /api/owner/data; POST /api/ownership/transfer."""

    def h_personal_get(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/owner/data."""
        return Response(200, {"data": PersonalStore(self.state_dir, self.board).read()})

    def h_personal_put(self, req: Request, s: Session, _p: dict[str, str], body: Any) -> Response:
        """PUT /api/owner/data."""
        PersonalStore(self.state_dir, self.board).write(body)
        self.event("owner.data.updated", "info", s.account, "write", "personal-data", "ok",
                   fields=sorted(body))
        return Response(204)

    def h_personal_delete(self, req: Request, s: Session, _p: dict[str, str],
                          _b: Any) -> Response:
        """DELETE /api/owner/data: crypto-erase."""
        result = PersonalStore(self.state_dir, self.board).erase()
        self.event("owner.data.deleted", "notice", s.account, "delete-my-data",
                   "personal-data", "ok", key_destroyed=result["key_destroyed"],
                   data_removed=result["data_removed"])
        return Response(200, result)

    def h_transfer(self, req: Request, s: Session, _p: dict[str, str], body: Any) -> Response:
        """POST /api/ownership/transfer."""
        new_owner = body.get("new_owner")
        if new_owner and (new_owner == auth.INSTALLER_ACCOUNT or (
                (acc := self.db.account(new_owner)) is not None and acc["role"] != roles.OWNER)):
            return error(409, "state", "an operator account with that name exists")
        summary = transfer_ownership(self.db, self.state_dir, self.board, self.clock())
        self.pepper = auth.pepper(self.state_dir, self.board)
        out: dict[str, Any] = {"summary": summary}
        if new_owner:
            secret = new_credential()
            self.create_account(new_owner, roles.OWNER, secret, s.account)
            out["new_owner"] = {"account": new_owner, "initial_credential": secret,
                                "must_change": True}
        self.event("ownership.transferred", "notice", s.account, "transfer-ownership", "owner",
                   "ok", new_owner=new_owner or "", **{k: v for k, v in summary.items()})
        resp = Response(200, out)
        resp.cookies.append(self._cookie("", 0))
        return resp
