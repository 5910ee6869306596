"""Operator output: readable logs on a terminal (JSON lines otherwise), and tables with values,
not Python reprs (True, None, {'locked': False}) or empty versions."""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from firmware.common.version import software_version
from firmware.gateway.cli.status import render
from firmware.gateway.runtime import jsonlog
from host_tools.cli.platform import _line
from tests.conftest import ROOT
from tests.gateway.helpers import host_cmd

REPR = re.compile(r"\b(True|False|None)\b|\{'|\['")


def test_status_shows_values_and_the_running_version() -> None:
    doc = {"gateway": {"board": "sim", "state": "running", "pid": 7, "uptime_s": 3.0,
                       "running": True}, "age_s": 0.4,
           "lan": {"host": "127.0.0.1", "port": 4000, "tls": True, "sessions": 1, "refused": 0},
           "firmware": {"version": "", "slot": "", "state": "idle", "history": []},
           "wan": {"broker": "mqtts://x:1", "connected": False, "queue": {"depth": None}},
           "devices": [{"id": "door", "transport": "ip", "state": "offline", "reason": None}],
           "events": []}
    text = render(doc)
    assert not REPR.search(text), text
    assert "firmware %s" % software_version() in text
    assert "tls yes" in text and "connected no" in text and "devices  1 (1 offline)" in text


def test_platform_lines_have_no_python_reprs() -> None:
    line = _line({"gateway": "gw", "type": "cmd_result", "body": {
        "command_id": "c1", "action": "unlock", "device": "door", "ok": True,
        "actual": {"locked": False}, "refused": None}})
    assert line.endswith("c1 unlock on door: done, actual locked no") and not REPR.search(line)
    line = _line({"gateway": "gw", "type": "status", "body": {"online": True,
                                                              "queue_depth": None}})
    assert "online yes, queue 0" in line and not REPR.search(line)


def test_board_profiles_read_as_words() -> None:
    for board in ("sim", "rpi4", "pico-w", "esp32-s3"):
        out = subprocess.run(host_cmd("boards", "show", board), cwd=ROOT, capture_output=True,
                             text=True, timeout=60).stdout
        assert out and not REPR.search(out), out


def test_text_log_lines_on_a_terminal_json_lines_elsewhere(tmp_path: Path) -> None:
    rec = logging.LogRecord("mamori.gateway", logging.WARNING, __file__, 1, "event", None, None)
    rec.event = {"kind": "auth.refused", "severity": "alert", "target": "127.0.0.1:5",  # type: ignore[attr-defined]
                 "result": "refused", "principal": "door", "reason": "installation ticket expired"}
    line = jsonlog.TextFormatter().format(rec)
    assert re.match(r"^\d\d:\d\d:\d\d alert   auth.refused 127.0.0.1:5 refused by door: "
                    r"installation ticket expired$", line), line

    gw = [sys.executable, "-m", "firmware.gateway.cli.main", "run", "--board", "sim",
          "--duration", "1"]
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(gw + ["--state-dir", str(tmp_path / "a")], cwd=ROOT,
                              stderr=slave, stdout=subprocess.DEVNULL, timeout=120)
        os.close(slave)
        text = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            text += chunk
    finally:
        os.close(master)
    lines = [ln for ln in text.decode().splitlines() if ln.strip()]
    assert proc.returncode == 0 and lines
    assert any("gateway.started" in ln for ln in lines)
    assert not any(ln.lstrip().startswith("{") for ln in lines), lines[:3]

    piped = subprocess.run(gw + ["--state-dir", str(tmp_path / "b")], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    first = [ln for ln in piped.stderr.splitlines() if ln.strip()][0]
    assert json.loads(first)["logger"].startswith("mamori")
    forced = subprocess.run(gw + ["--state-dir", str(tmp_path / "c"), "--log-format", "text"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "gateway.started" in forced.stderr and not forced.stderr.lstrip().startswith("{")


def test_a_mistyped_option_is_named_with_its_likely_meaning() -> None:
    """`--acton unlock` was answered "the following arguments are required: --action" only."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    for cli, args, typo, meant in (
            ("host_tools.cli.main", ["platform", "command", "--broker", "mqtts://127.0.0.1:1",
                                     "--site", "s", "--gateway", "g", "--device", "d",
                                     "--acton", "unlock"], "--acton", "--action"),
            ("firmware.gateway.cli.main", ["selftest", "--state-dr", "x"], "--state-dr",
             "--state-dir")):
        out = subprocess.run([sys.executable, "-m", cli, *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2
        assert "unknown option %s (did you mean %s?)" % (typo, meant) in out.stderr, out.stderr
    ok = subprocess.run([sys.executable, "-m", "firmware.gateway.cli.main", "selftest"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 2 and "unknown option" not in ok.stderr  # nothing mistyped


def test_newcomer_mistakes_get_plain_answers(tmp_path: Path) -> None:
    """A gateway bundle given as device credentials; a report path in a missing folder."""
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.provisioning.sitekit import Kit

    kit = Kit(tmp_path / "kit")
    dev = subprocess.run([sys.executable, "-m", "firmware.device.cli", "--credentials",
                          str(kit.bundle), "--gateway", "127.0.0.1:9", "--once"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert dev.returncode != 0 and "installation bundle, not a device credential" in dev.stderr
    assert "JSON: credential file is not acceptable JSON" not in dev.stderr
    st = subprocess.run([sys.executable, "-m", "firmware.gateway.cli.main", "selftest",
                         "--state-dir", str(kit.state), "--html",
                         str(tmp_path / "nowhere" / "r.html")], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
    assert st.returncode == 1 and "does not exist" in st.stderr and ".partial" not in st.stderr
