"""A refused device learns why, in words the installer can act on, and nothing more."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from firmware.core import refusals
from firmware.core.errors import AuthError
from firmware.core.events import Event
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.binding import DeviceBinding, set_required
from firmware.gateway.lan.service import LanService
from tests.lan.test_binding import connect, run_gateway, ticket
from tests.provisioning.sitekit import Kit, load


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path / "k")


def test_each_refusal_reaches_the_device_as_an_actionable_code(kit: Kit) -> None:
    door, hall = load(kit.device("door")), load(kit.device("hall"))
    late = ticket(kit, "hall", minutes=1)
    used = ticket(kit, "door")
    set_required(kit.state, True)
    said: list[str] = []

    async def refused(lan: LanService, creds: dict, tk: tuple[dict, str] | None = None) -> None:
        with pytest.raises(AuthError) as err:
            await connect(lan, creds, tk)
        said.append(str(err.value))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await refused(lan, hall)  # no ticket where one is required
        await refused(lan, hall, (late[0], "AAAA-BBBB-CCCC-DDDD"))  # mistyped secret
        await connect(lan, door, used)
        set_required(kit.state, False)
        await refused(lan, hall, used)  # another device's ticket
        # The ticket expires: judged by a gateway clock two minutes ahead.
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)
        lan.authorizer = DeviceBinding(kit.state, now=later.timestamp).wrap(
            DeviceAuthorizer(kit.state))
        await refused(lan, hall, late)

    events = run_gateway(kit, scenario)
    assert "requires a one-time installation ticket" in said[0]
    assert "mamori provision install-secret" in said[0]
    assert "mistyped secret" in said[1]
    assert "another device's or gateway's ticket" in said[2]
    assert "installation ticket has expired" in said[3]
    codes = [e.params.get("code") for e in events if e.kind == "auth.refused"]
    assert codes == [refusals.TICKET_REQUIRED, refusals.TICKET_INVALID, refusals.TICKET_INVALID,
                     refusals.TICKET_EXPIRED]
    # What crossed the wire is a code: the gateway's own reasons (ids, secrets) stay home.
    assert all("wrong installation secret" not in s and "AAAA" not in s for s in said)


def test_refusal_frame_carries_only_a_known_code() -> None:
    msg = refusals.refusal_message("serial 1234 is revoked")
    assert msg == {"type": "refused", "reason": "authentication failed",
                   "code": refusals.NOT_AUTHORISED}
    assert json.dumps(refusals.refusal_message(refusals.BUSY)).count("busy") == 1
    assert "credentials" in refusals.explain(None)
