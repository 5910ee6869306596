"""Board in a box: the rpi4 image, built by the real `mamori flash image`, runs from its own
files: slot A and the data partition are read back out of the image file, laid over an arm64
Debian root holding exactly the base OS the image's profile declares (mmdebstrap, cached in
~/.cache/mamori), and the unit's own ExecStart runs as the unit's user with the unit's
capabilities under qemu-user. The gateway installs the bundle, serves a device over mutual TLS
(the device agent runs on the host, in the box's network namespace), tells its sd_notify socket
READY=1 and WATCHDOG=1, and `mamori-gateway selftest` from the image passes every check that
does not need the real hardware. Run by `make test-board` (not by `make test`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.board import box
from tests.conftest import ROOT, require, require_image_tools

pytestmark = [pytest.mark.board, pytest.mark.timeout(2400)]
OK_VERDICTS = ("pass", "not_applicable")


def _status(b: box.Box) -> dict:
    try:
        doc = json.loads((b.state() / "run/status.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def test_rpi4_image_runs_from_its_own_files(tmp_path: Path) -> None:
    require_image_tools()
    for component in ("netns", "mmdebstrap", "qemu-arm64"):
        require(component)
    timings: dict[str, float] = {}
    site = Site.init(tmp_path / "site", 3, "Board in a box")
    site.allow("Acme", "Lock 2", "ip")
    # A device credential names its gateway, so the gateway is issued first.
    issue_gateway(site, "rpi4", "gw-box", tmp_path / "gw.bundle")
    issue_device(site, "ip", "Acme", "Lock 2", "door", tmp_path / "door.json")
    stranger = Site.init(tmp_path / "other-site", 3, "Someone else's house")
    stranger.allow("Acme", "Lock 2", "ip")
    issue_gateway(stranger, "rpi4", "gw-other", tmp_path / "other.bundle")
    issue_device(stranger, "ip", "Acme", "Lock 2", "door", tmp_path / "stranger.json")

    image = tmp_path / "rpi4.img"
    start = time.monotonic()
    made = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "flash", "image", "--board",
                           "rpi4", "--unsigned-dev-build", "--bundle", str(tmp_path / "gw.bundle"),
                           "--out", str(image), "--json", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    timings["image build s"] = time.monotonic() - start
    assert made.returncode == 0, made.stderr
    desc = json.loads(made.stdout)
    assert desc["verified"] and desc["base_os_requires"]["python"] == "3.11"
    assert {"cryptography", "paho-mqtt", "tuf", "zigpy", "bleak"} <= \
        {w["name"] for w in desc["dependencies"]}

    # From here on: only what the image file holds.
    slot = box.read_ext4(image, 2, tmp_path / "slot", tmp_path)
    data = box.read_ext4(image, 4, tmp_path / "data", tmp_path)
    board = tomllib.loads((slot / "etc/mamori/board.toml").read_text())
    deps = json.loads((slot / "opt/mamori/dependencies.json").read_text())
    assert deps["wheels"] == desc["dependencies"]
    tar, cold = box.rootfs_tar(board["base_os_requires"], board["cpu"]["arch"])
    if cold is not None:
        timings["cold rootfs build s"] = cold

    start = time.monotonic()
    with box.box(tar, slot, data, tmp_path / "box", board) as b:
        timings["box setup s"] = time.monotonic() - start
        b.notify = box.NotifyListener(b.root / box.NOTIFY_PATH.lstrip("/"))
        env = {"NOTIFY_SOCKET": box.NOTIFY_PATH, "WATCHDOG_USEC": str(b.unit.watchdog_usec),
               "WATCHDOG_PID": "__WATCHDOG_PID__"}
        start = time.monotonic()
        gw = subprocess.Popen(b.command(b.unit.exec_start, extra_env=env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            box.wait_until(lambda: gw.poll() is not None or
                           (_status(b).get("lan") or {}).get("port"), 600, "the LAN server")
            if gw.poll() is not None:
                raise AssertionError("the gateway exited: " + gw.communicate()[1][-3000:])
            timings["gateway start s"] = time.monotonic() - start
            lan = _status(b)["lan"]
            assert lan["tls"] and lan["host"] == b.addresses["wlan0"]
            endpoint = "%s:%d" % (lan["host"], lan["port"])

            box.wait_until(lambda: b.notify is not None and b.notify.saw(gw.pid, "READY=1"),
                           120, "READY=1 from the gateway's main pid")
            box.wait_until(lambda: b.notify is not None and b.notify.saw(gw.pid, "WATCHDOG=1"),
                           b.unit.watchdog_usec / 1e6, "a WATCHDOG=1 within WatchdogSec")

            agent = [str(Path(sys.executable).parent / "mamori-device"), "--gateway", endpoint,
                     "--once", "--credentials"]
            once = subprocess.run(b.host(agent + [str(tmp_path / "door.json")]),
                                  capture_output=True, text=True, timeout=300)
            assert once.returncode == 0, once.stderr
            assert "gw-box" in once.stdout
            foreign = subprocess.run(b.host(agent + [str(tmp_path / "stranger.json")]),
                                     capture_output=True, text=True, timeout=300)
            assert foreign.returncode != 0, foreign.stdout  # another site's device: refused

            # The installer's first step: replace the initial credential (from the image).
            initial = (tmp_path / "gw.bundle.admin-credential").read_text().strip()
            pw = subprocess.run(b.command(["/usr/bin/python3", "-m", "firmware.gateway.cli.main",
                                           "admin", "set-password", "--state-dir",
                                           b.unit.state_dir]),
                                input=initial.splitlines()[-1] + "\nBox-Unique-Pass-8352\n",
                                capture_output=True, text=True, timeout=300)
            assert pw.returncode == 0, pw.stderr

            start = time.monotonic()
            st = subprocess.run(b.command(["/usr/bin/python3", "-m", "firmware.gateway.cli.main",
                                           "selftest", "--state-dir", b.unit.state_dir,
                                           "--board", board["name"], "--json"]),
                                capture_output=True, text=True, timeout=1500)
            timings["selftest s"] = time.monotonic() - start
            try:
                report = json.loads(st.stdout)
            except ValueError:
                raise AssertionError("selftest printed no report: " + st.stderr[-3000:])
            results = report.get("report", report)["results"]
            bad = ["%s: %s %s" % (r["id"], r["verdict"], "; ".join(r.get("evidence", []))[:300])
                   for r in results if r["verdict"] not in OK_VERDICTS]
            assert not bad, "\n".join(bad)
            assert all(r.get("reason") for r in results if r["verdict"] == "not_applicable")
            assert {r["id"]: r["verdict"] for r in results}.get("board.base-os") == "pass"
            verdicts = [r["verdict"] for r in results]
            timings["selftest passed"] = verdicts.count("pass")
            timings["selftest not-applicable"] = verdicts.count("not_applicable")
        finally:
            if gw.poll() is None:
                gw.send_signal(signal.SIGTERM)
            try:
                _, err = gw.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                gw.kill()
                _, err = gw.communicate()
        assert gw.returncode == 0, err[-3000:]
    timings["image MiB"] = image.stat().st_size / (1 << 20)
    print("\nboard in a box: " + ", ".join("%s %.1f" % kv for kv in timings.items()))
