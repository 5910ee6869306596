"""Before its keys are destroyed, the resale reset hands the access log to the platform: over
the WAN (real Mosquitto, the platform's `mamori platform watch`) or, by an operator, as an
escrow file the platform imports; the platform verifies that the log ended in a reset."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.common import kek as devicekey
from firmware.gateway.owner.resale import marker
from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker
from tests.admin.house import GATEWAY_ID, House, build_house, issue
from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, wait_for


def mamori(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mamori ARGS` as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "host_tools.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, input=stdin)


def gateway(*args: str, stdin: str = "", timeout: float = 180
            ) -> subprocess.CompletedProcess[str]:
    """`mamori-gateway ARGS`."""
    return subprocess.run(gateway_cmd(*args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[dict[str, Path | str]]:
    """A site, the gateway's bundle, the platform's broker and its watch filing log uploads."""
    require("mosquitto")
    site, bundle, initial = issue(tmp_path)
    p = site / "platform"
    broker = EmbeddedBroker(tmp_path / "broker", BrokerTls(
        cafile=p / "ca.pem", certfile=p / "server.pem", keyfile=p / "server.key",
        crlfile=site / "ca" / "crl.pem"))
    broker.start()
    # The persistent session (and its subscription) exists before the gateway speaks.
    subprocess.run([sys.executable, "-m", "host_tools.cli.main", "platform", "watch", "--broker",
                    broker.url, "--site", str(site), "--session", "reset-platform", "--count",
                    "0"], cwd=ROOT, check=True, capture_output=True, timeout=120)
    watch = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli.main", "platform", "watch", "--broker", broker.url,
         "--site", str(site), "--session", "reset-platform", "--log-inbox",
         str(tmp_path / "inbox"), "--json"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        yield {"site": site, "bundle": bundle, "initial": initial, "url": broker.url,
               "inbox": tmp_path / "inbox" / GATEWAY_ID, "state": tmp_path / "state"}
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.communicate(timeout=30)
        broker.stop()


def _until(check: object, what: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        res = check()  # type: ignore[operator]
        if res.returncode == 0 or time.monotonic() > deadline:
            assert res.returncode == 0, (what, res.stdout[-2000:], res.stderr[-2000:])
            return res  # type: ignore[no-any-return]
        time.sleep(0.3)


@pytest.mark.timeout(300)
def test_reset_hands_the_log_to_the_platform_over_the_wan(
        platform: dict[str, Path | str]) -> None:
    state, inbox = Path(platform["state"]), Path(platform["inbox"])
    gw = subprocess.Popen(gateway_cmd("run", "--board", "sim", "--bundle",
                                      str(platform["bundle"]), "--state-dir", str(state),
                                      "--broker", str(platform["url"])),
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(state, lambda d: (d.get("wan") or {}).get("connected") is True)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.communicate(timeout=60)
    assert gw.returncode == 0
    kek = devicekey.kek_path(state).read_bytes()
    # The platform unreachable: the reset refuses and nothing is destroyed.
    down = gateway("reset", "--resale", "--yes", "--state-dir", str(state), "--broker",
                   "mqtts://127.0.0.1:%d" % _closed_port(), "--upload-timeout", "3")
    assert down.returncode == 1 and "did not reach the platform" in down.stderr, down.stderr
    assert marker(state) is None and devicekey.kek_path(state).read_bytes() == kek
    # Reachable (where the gateway last reached it): the log goes first, then everything else.
    done = gateway("reset", "--resale", "--yes", "--state-dir", str(state), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["logs"]["handoff"] == "wan" and doc["logs"]["delivered"] is True
    assert doc["logs"]["broker"] == platform["url"] and doc["kek_destroyed"]
    assert not (state / "accesslog").exists()
    # The platform's copy verifies and ends in the reset (the watch files it asynchronously).
    res = _until(lambda: mamori("logs", "verify", str(inbox), "--expect-reset", "--json"),
                 "platform copy ends in the reset")
    rep = json.loads(res.stdout)
    assert rep["ok"] and rep["ended_in_reset"] and rep["final_checkpoint"]["epoch"] >= 1
    shown = json.loads(mamori("logs", "show", str(inbox), "--json").stdout)
    assert shown[-1]["kind"] == "gateway.reset" and shown[-1]["params"]["handoff"] == "wan"
    assert any(r["kind"] == "gateway.started" for r in shown)  # the whole log, not the tail


def test_operator_escrow_is_imported_and_verified_by_the_platform(tmp_path: Path) -> None:
    house: House = build_house(tmp_path)
    escrow = tmp_path / "usb-stick"
    escrow.mkdir()
    args = ("reset", "--resale", "--yes", "--json", "--state-dir", str(house.state),
            "--escrow-to", str(escrow))
    # operators only: no credential, no escrow (and nothing destroyed)
    refused = gateway(*args, stdin="\n")
    assert refused.returncode == 1 and "credential" in refused.stderr
    assert marker(house.state) is None and not list(escrow.iterdir())
    done = gateway(*args, stdin=house.installer + "\n")
    assert done.returncode == 0, done.stderr
    logs = json.loads(done.stdout)["logs"]
    assert logs["handoff"] == "escrow" and Path(logs["file"]).parent == escrow
    raw = Path(logs["file"]).read_bytes()
    assert [n for n in house.needles() if n in raw] == []  # readable by the platform only
    inbox = tmp_path / "inbox"
    imp = mamori("logs", "import", logs["file"], "--site", str(house.site), "--inbox",
                 str(inbox), "--json")
    assert imp.returncode == 0, imp.stderr
    assert json.loads(imp.stdout)["gateways"] == [GATEWAY_ID]
    ver = mamori("logs", "verify", str(inbox / GATEWAY_ID), "--expect-reset", "--json")
    assert ver.returncode == 0, ver.stdout + ver.stderr
    assert json.loads(ver.stdout)["ended_in_reset"] is True
    # the platform holds the household's log (it can read who did what), the gateway does not
    shown = mamori("logs", "show", str(inbox / GATEWAY_ID), "--json")
    assert house.canaries["guard"] in shown.stdout and "gateway.reset" in shown.stdout
    # importing again changes nothing; an altered escrow is refused as tampering
    assert mamori("logs", "import", logs["file"], "--site", str(house.site), "--inbox",
                  str(inbox)).returncode == 0
    lines = raw.decode().splitlines()
    seg = next(i for i, x in enumerate(lines) if '"segment"' in x)
    msg = json.loads(lines[seg])
    msg["body"]["data"] = "AAAA" + msg["body"]["data"][4:]
    lines[seg] = json.dumps(msg)
    bad = tmp_path / "altered.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    alt = mamori("logs", "import", str(bad), "--site", str(house.site), "--inbox", str(inbox))
    assert alt.returncode == 2 and "refused" in alt.stderr


def test_a_log_that_goes_on_after_its_last_checkpoint_did_not_end_in_a_reset(
        tmp_path: Path) -> None:
    house: House = build_house(tmp_path)
    ver = mamori("logs", "verify", str(house.state), "--expect-reset", "--json")
    rep = json.loads(ver.stdout)
    assert ver.returncode == 2 and rep["ok"] and rep["ended_in_reset"] is False
