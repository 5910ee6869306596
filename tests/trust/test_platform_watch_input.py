"""`mamori platform watch` treats what arrives over MQTT as hostile: topic levels and gateway
ids are provisioning ids (no ``..`` filing log uploads outside the inbox), and the text it
prints carries no terminal control characters.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from firmware.gateway.wan import topics
from host_tools.logs.inbox import Inboxes
from host_tools.platform.client import PlatformClient
from host_tools.platform.site import load_site
from tests.conftest import ROOT, require
from tests.trust.house import make_house

HEAD = {"type": "head", "id": "h", "checkpoint": {"forged": True}}
SEGMENT = {"type": "segment", "id": "s", "name": "seg-00000000.log", "offset": 0,
           "data": base64.b64encode(b"FORGED SEGMENT").decode()}
BAD_GATEWAYS = ("..", ".", "-x", ".hidden")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("gw", BAD_GATEWAYS)
def test_up_link_topics_carry_only_provisioning_ids(gw: str) -> None:
    assert topics.parse_up("mamori/v1/%s/logs" % gw) is None
    assert topics.parse_up("mamori/v1/gw-1/logs") == ("gw-1", "logs")


@pytest.mark.parametrize("gw", BAD_GATEWAYS)
def test_inbox_files_nothing_outside_itself(tmp_path: Path, gw: str) -> None:
    inbox = tmp_path / "box" / "in"
    inboxes = Inboxes(inbox, escrow_key=None)
    for item in (HEAD, SEGMENT):
        assert inboxes.file(gw, dict(item)) is False
    assert _files(tmp_path) == []
    assert inboxes.file("gw-1", dict(HEAD)) is True
    assert _files(tmp_path) == ["box/in/gw-1/heads.jsonl"]


def _lines(stream: IO[str], out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)


def _until(lines: queue.Queue[str], pred: object, timeout: float = 30) -> list[str]:
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if pred(line):  # type: ignore[operator]
            return seen
    raise AssertionError("not seen within %.0f s: %r" % (timeout, seen[-10:]))


def test_watcher_refuses_traversal_and_prints_no_controls(tmp_path: Path) -> None:
    require("mosquitto")
    house = make_house(tmp_path / "house")
    broker = house.broker(tmp_path / "broker")
    box = tmp_path / "box"
    (box / "in").mkdir(parents=True)
    watch = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli.main", "platform", "watch", "--broker",
         broker.url, "--site", str(house.site.root), "--clean-session",
         "--log-inbox", str(box / "in"), "--duration", "120"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    for stream, q in ((watch.stdout, out), (watch.stderr, err)):
        threading.Thread(target=_lines, args=(stream, q), daemon=True).start()
    attacker = PlatformClient(load_site(house.site.root), broker.url)
    try:
        _until(err, lambda line: "subscribed" in line)
        attacker.connect(subscribe=False)
        for gw in ("..", "."):
            for item in (HEAD, SEGMENT):
                doc = {"id": item["id"] + gw, "gateway": gw, "type": "logs", "body": item}
                attacker.publish("mamori/v1/%s/logs" % gw, doc)
        # the last message, on one connection: when it is shown, the others were handled
        attacker.publish(topics.up("gw-1", "alerts"), {
            "id": "a-1", "gateway": "gw-1", "type": "alerts",
            "body": {"kind": "x\x1b[2Jforged", "reason": "\x1b]0;t\x07\x9b2J\x7fend"}})
        shown = _until(out, lambda line: "forged" in line)
    finally:
        attacker.close()
        watch.terminate()
        watch.communicate(timeout=30)
        broker.stop()
    assert _files(box) == []
    line = shown[-1]
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in line.rstrip("\n")), line
    assert "forged" in line and "end" in line
    assert all(json.dumps(s) for s in shown)
