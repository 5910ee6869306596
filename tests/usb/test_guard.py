"""USB guard against sysfs-shaped trees: CLI, enforcement, uevents, windows, last good policy."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boards import load_board
from firmware.common.passwords import hash_credential
from firmware.core.events import Event
from firmware.gateway.cli.main import main
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.usbguard.backend import SysfsBackend, UsbguardDaemonBackend
from firmware.gateway.usbguard.service import UsbGuardService
from firmware.gateway.usbguard.sysfs import Sysfs
from firmware.gateway.usbguard.uevent import (
    NetlinkSource,
    QueueSource,
    encode_uevent,
    parse_uevent,
)
from tests.core.portable import FakeClock
from tests.usb.sysfs_tree import COMPOSITE, KEYBOARD, STICK, ZIGBEE, SysfsTree, standard_tree

ROGUE = ["1-4", "1-5", "1-6", "1-7"]
SECRET = "correct horse battery staple"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str,
                                                                                     str]:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        rc = main(list(argv))
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return rc, out, err


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name != "descriptors":
            out[str(p)] = p.read_text()
    return out


class Harness:
    """A gateway on the sim board with the USB guard on a tmp sysfs tree."""

    def __init__(self, tmp: Path, tree: SysfsTree | None = None) -> None:
        self.tree = tree or standard_tree(tmp / "sys")
        self.state = tmp / "state"
        self.gw = Gateway(GatewayConfig("sim", self.state), load_board("sim"))
        self.events: list[Event] = []
        self.gw.bus.subscribe(self.events.append)
        self.clock = FakeClock(time.time())
        self.source = QueueSource()
        self.svc = UsbGuardService(self.gw, self.tree.root, self.source, self.clock,
                                   tick=3600)

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    async def plug(self, port: str, spec: tuple[Any, ...]) -> None:
        self.tree.insert(port, spec)
        self.source.deliver("add", self.tree.devpath(port), DEVTYPE="usb_device")
        await self.source.queue.join()


def test_evaluate_cli_refuses_rogues_keeps_dongle_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = standard_tree(tmp_path / "sys")
    policy = tmp_path / "rules.conf"
    policy.write_text("# nothing allowed beyond the board profile\n")
    before = snapshot(tree.root)
    rc, out, _ = run_cli(capsys, "usb", "evaluate", "--policy", str(policy), "--sysfs",
                         str(tree.root), "--state-dir", str(tmp_path / "st"), "--json")
    assert rc == 0
    res = {r["device"]: r for r in json.loads(out)}
    assert snapshot(tree.root) == before
    for name in ROGUE:
        assert res[name]["decision"] == "block", name
        assert {i["decision"] for i in res[name]["interfaces"]} == {"block"}
    assert res["1-2"]["decision"] == "allow"
    assert res["1-2"]["interfaces"] == [
        {"interface": "1-2:1.0", "type": "ff:00:00", "types": ["ff:00:00"], "decision": "allow",
         "reason": "allowed"}]
    assert res["usb1"]["decision"] == "allow"
    assert set(res["1-4"]) >= {"device", "decision", "rule", "interfaces"}


def test_evaluate_cli_refuses_malformed_policy_with_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = standard_tree(tmp_path / "sys")
    cases = {
        "allow id 1a86:55d4\nallow id xyz\n": ":2: bad id",
        "allow id 046d:c31c\nreject id 046d:c31c\n": ":2: contradicts line 1",
        "# c\n\nallow frobnicate 1\n": ":3: unknown attribute",
        'allow via-port "1-3"\n': ":1: allows port 1-3",
    }
    for text, expect in cases.items():
        policy = tmp_path / "bad.rules"
        policy.write_text(text)
        rc, _, err = run_cli(capsys, "usb", "evaluate", "--policy", str(policy), "--sysfs",
                             str(tree.root), "--state-dir", str(tmp_path / "st"))
        assert rc == 1
        assert str(policy) + expect in err, err
        rc, _, err = run_cli(capsys, "usb", "check", "--policy", str(policy))
        assert rc == 1 and str(policy) + expect in err


def test_service_locks_down_and_refuses_present_rogues(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario() -> None:
        await h.svc.start()
        await h.svc.stop()

    asyncio.run(scenario())
    t = h.tree
    assert t.read("usb1", "authorized_default") == "0"
    assert t.read("usb1", "interface_authorized_default") == "0"
    assert t.read("usb1") == "1" and t.read("1-0:1.0") == "1"
    assert t.read("1-2") == "1" and t.read("1-2:1.0") == "1"
    for name in ROGUE:
        assert t.read(name) == "0", name
    rogue = h.kinds("rogue.usb")
    assert sorted(e.target for e in rogue) == ROGUE
    for e in rogue:
        assert e.severity == "alert" and e.source == "usb" and e.result == "block"
        assert e.params["id"] and e.params["interfaces"] and e.params["rule"]
    assert [e.target for e in h.kinds("usb.allowed")] == ["1-2"]
    st = h.svc.status()
    assert st["devices"]["1-4"]["decision"] == "block" and st["backend"] == "sysfs"


def test_hotplug_uevent_and_hid_window_keeps_composite_storage_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path, SysfsTree(tmp_path / "sys"))
    cred = h.state / "admin" / "credential.json"
    cred.parent.mkdir(parents=True)
    cred.write_text(json.dumps({"hash": hash_credential(SECRET), "must_change": False}))

    async def scenario() -> None:
        await h.svc.start()
        await h.plug("1-2", ZIGBEE)
        await h.plug("1-5", KEYBOARD)
        await h.plug("1-7", COMPOSITE)
        t = h.tree
        assert t.read("1-2") == "1" and t.read("1-5") == "0" and t.read("1-7") == "0"
        assert [e.target for e in h.kinds("rogue.usb")] == ["1-5", "1-7"]
        assert all(e.action == "insert" for e in h.kinds("rogue.usb"))

        rc, out, err = run_cli(capsys, "usb", "maintenance", "open", "--class", "hid",
                               "--minutes", "10", "--operator", "alice", "--state-dir",
                               str(h.state), "--json", stdin="wrong\n")
        assert rc == 1 and "wrong admin credential" in err
        rc, out, _ = run_cli(capsys, "usb", "maintenance", "open", "--class", "hid",
                             "--minutes", "10", "--operator", "alice", "--reason", "kbd",
                             "--state-dir", str(h.state), "--json", stdin=SECRET + "\n")
        assert rc == 0
        window = json.loads(out)
        assert stat.S_IMODE(os.stat(h.state / "usb" / "maintenance.json").st_mode) == 0o600
        h.svc.housekeeping_once()
        assert [e.principal for e in h.kinds("usb.maintenance.open")] == ["alice"]
        assert t.read("1-5") == "1" and t.read("1-7") == "1"
        # the kernel now instantiates the interfaces, unauthorised by default, and says so
        for port, spec in (("1-5", KEYBOARD), ("1-7", COMPOSITE)):
            for iface in t.add_interfaces(port, spec[3]):
                h.source.deliver("add", t.devpath(iface), DEVTYPE="usb_interface")
        await h.source.queue.join()
        assert t.read("1-5:1.0") == "1" and t.read("1-5:1.1") == "1"
        assert t.read("1-7:1.0") == "1"
        assert t.read("1-7:1.1") == "0"  # storage stays off in a HID window
        uses = h.kinds("usb.maintenance.use")
        assert {e.target for e in uses} >= {"1-5", "1-7"}
        assert all(e.principal == "alice" for e in uses)
        partial = [e for e in h.kinds("rogue.usb") if e.result == "partial"]
        assert partial and partial[-1].target == "1-7"
        # a stick in the HID window is still refused
        await h.plug("1-4", STICK)
        assert t.read("1-4") == "0"

        h.clock.advance(601)
        h.svc.housekeeping_once()
        closes = h.kinds("usb.maintenance.close")
        assert [e.params.get("id") for e in closes] == [window["id"]]
        assert t.read("1-5") == "0" and t.read("1-7") == "0"
        assert t.read("1-2") == "1" and t.read("usb1") == "1"
        await h.svc.stop()

    asyncio.run(scenario())


def test_unneeded_port_stays_off_even_in_port_window(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path, SysfsTree(tmp_path / "sys"))
    cred = tmp_path / "cred.json"
    cred.write_text(json.dumps({"hash": hash_credential(SECRET), "must_change": False}))
    rc, _, err = run_cli(capsys, "usb", "maintenance", "open", "--port", "1-1", "--operator",
                         "alice", "--credential-file", str(cred), "--state-dir", str(h.state),
                         stdin=SECRET + "\n")
    assert rc == 1 and "not needed" in err
    rc, _, _ = run_cli(capsys, "usb", "maintenance", "open", "--port", "1-4", "--operator",
                       "alice", "--credential-file", str(cred), "--state-dir", str(h.state),
                       stdin=SECRET + "\n")
    assert rc == 0

    async def scenario() -> None:
        await h.svc.start()
        await h.plug("1-1", STICK)
        await h.plug("1-4", STICK)
        await h.svc.stop()

    asyncio.run(scenario())
    assert h.tree.read("1-1") == "0"
    assert h.tree.read("1-4") == "1"
    locked = [e for e in h.kinds("rogue.usb") if e.target == "1-1"]
    assert locked and locked[0].params["via"] == "board-locked"


def test_malformed_policy_keeps_last_good(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path)
    good = tmp_path / "good.rules"
    good.write_text("allow id 046d:c31c via-port \"1-5\" with-interface one-of { 03:*:* }\n")
    rc, _, _ = run_cli(capsys, "usb", "commit", "--policy", str(good), "--state-dir",
                       str(h.state))
    assert rc == 0

    async def scenario() -> None:
        await h.svc.start()
        assert h.tree.read("1-5") == "1"
        rules = h.state / "usb" / "rules.conf"
        rules.write_text("allow id 046d:c31c\nallow everything\n")
        os.utime(rules, (time.time() + 5, time.time() + 5))
        h.svc.housekeeping_once()
        inv = h.kinds("usb.policy.invalid")
        assert len(inv) == 1 and str(rules) + ":2: unknown attribute" in inv[0].reason
        assert h.svc.status()["policy"]["rules"] == 1
        assert h.tree.read("1-5") == "1" and h.tree.read("1-4") == "0"
        rules.unlink()
        h.svc.housekeeping_once()
        assert h.tree.read("1-5") == "1"
        assert h.kinds("usb.policy.missing")
        await h.svc.stop()

    asyncio.run(scenario())
    bad = tmp_path / "bad.rules"
    bad.write_text("block id 1234:*\nallow id 1234:*\n")
    rc, _, err = run_cli(capsys, "usb", "commit", "--policy", str(bad), "--state-dir",
                         str(h.state))
    assert rc == 1 and str(bad) + ":2: contradicts line 1" in err


def test_learn_then_commit_allows_present_only(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path)
    h.tree.insert("1-1", STICK)
    out = tmp_path / "learned.rules"
    rc, _, _ = run_cli(capsys, "usb", "learn", "--sysfs", str(h.tree.root), "--out", str(out))
    assert rc == 0
    text = out.read_text()
    assert "# skipped 1-1" in text and "usb1" not in text
    rc, _, err = run_cli(capsys, "usb", "learn", "--sysfs", str(h.tree.root), "--out", str(out))
    assert rc == 1 and "--force" in err
    assert run_cli(capsys, "usb", "commit", "--policy", str(out), "--state-dir",
                   str(h.state))[0] == 0

    async def scenario() -> None:
        await h.svc.start()
        await h.plug("1-8", STICK)
        await h.svc.stop()

    asyncio.run(scenario())
    for name in ROGUE + ["1-2"]:
        assert h.tree.read(name) == "1", name
    assert h.tree.read("1-1") == "0" and h.tree.read("1-8") == "0"
    assert sorted(e.target for e in h.kinds("rogue.usb")) == ["1-1", "1-8"]


def test_malformed_descriptors_blocked(tmp_path: Path) -> None:
    h = Harness(tmp_path, SysfsTree(tmp_path / "sys"))

    async def scenario() -> None:
        await h.svc.start()
        h.tree.insert("1-4", STICK, descriptors=b"\x12\x01" + b"\x00" * 16 + b"\x09\x02\x40")
        h.source.deliver("add", h.tree.devpath("1-4"))
        await h.source.queue.join()
        await h.svc.stop()

    h.tree.dirs["usb1"].joinpath("authorized_default").write_text("1\n")
    asyncio.run(scenario())
    assert h.tree.read("1-4") == "0"
    ev = h.kinds("rogue.usb")
    assert ev and "malformed descriptors" in ev[0].reason


def test_reject_removes_and_root_hub_never_written(tmp_path: Path) -> None:
    tree = standard_tree(tmp_path / "sys")
    sysfs = Sysfs(tree.root)
    backend = SysfsBackend(sysfs)
    res = {"device": "1-7", "decision": "reject", "interfaces": []}
    assert backend.apply(res) == ["1-7/authorized=0", "1-7/remove=1"]
    assert tree.read("1-7", "remove") == "1"
    assert backend.apply({"device": "usb1", "decision": "block", "interfaces": []}) == []
    assert tree.read("usb1") == "1"
    with pytest.raises(Exception, match="root hub"):
        sysfs.set_authorized("usb1", False)
    with pytest.raises(Exception, match="not a USB sysfs name"):
        sysfs.read_device("../../etc")


def test_netlink_wire_format_through_socket(tmp_path: Path) -> None:
    assert parse_uevent(b"libudev\0\xfe\xed") is None
    assert parse_uevent(b"garbage") is None
    assert parse_uevent(b"add@/x\0ACTION=add\0") is None
    h = Harness(tmp_path, SysfsTree(tmp_path / "sys"))
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    h.svc.source = NetlinkSource(a)

    async def scenario() -> None:
        await h.svc.start()
        h.tree.insert("1-5", KEYBOARD)
        b.send(b"libudev\0junk")
        b.send(encode_uevent("add", h.tree.devpath("1-5"), DEVTYPE="usb_device"))
        for _ in range(200):
            if h.kinds("rogue.usb"):
                break
            await asyncio.sleep(0.01)
        await h.svc.stop()

    asyncio.run(scenario())
    b.close()
    assert [e.target for e in h.kinds("rogue.usb")] == ["1-5"]
    assert h.tree.read("1-5") == "0"


def test_usbguard_daemon_backend(tmp_path: Path) -> None:
    tree = standard_tree(tmp_path / "sys")
    log = tmp_path / "calls.log"
    fake = tmp_path / "usbguard"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" >> %s\n'
        'if [ "$1" = list-devices ]; then\n'
        '  echo \'7: allow id 1a86:55d4 serial "" name "x" via-port "1-2" '
        'with-interface ff:00:00\'\n'
        '  echo \'9: block id 046d:c31c serial "" name "USB Keyboard" via-port "1-5" '
        'with-interface { 03:01:01 03:00:00 }\'\n'
        "fi\n" % log)
    fake.chmod(0o755)
    backend = UsbguardDaemonBackend(Sysfs(tree.root), str(fake))
    assert backend.apply_device("1-5", "reject") == ["usbguard reject-device 9 (1-5)"]
    assert "reject-device 9" in log.read_text()
    assert backend.apply_device("1-4", "block") == ["1-4/authorized=0"]  # unknown: sysfs
    assert backend.apply_device("usb1", "block") == []
    assert not UsbguardDaemonBackend.available(str(tmp_path / "absent"))
