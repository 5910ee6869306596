"""`mamori-gateway run` (sim) wires the monitor: rogue attempts show in `status --json`."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from firmware.core import frames
from tests.gateway.helpers import start_gateway, wait_for


def test_status_has_monitor_section_and_counts_rogue_attempts(tmp_path: Path) -> None:
    proc = start_gateway(tmp_path)
    try:
        doc = wait_for(tmp_path, lambda d: "monitor" in d and d.get("lan", {}).get("port"))
        port = doc["lan"]["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(frames.encode({"type": "hello", "id": "rogue-thing"}))
            s.recv(4096)

        def reported(d: dict[str, Any]) -> bool:
            return d["monitor"]["rogue"]["counts"]["reported"] >= 1

        doc = wait_for(tmp_path, reported)
        mon = doc["monitor"]
        assert mon["rogue"]["by_path"] == {"lan": 1}
        assert mon["rogue"]["blocked"] == [] and mon["radios"] == []
        assert any(d["to"] == "online" for d in mon["detections"])
        kinds = [e["kind"] for e in doc["events"]]
        assert "auth.refused" in kinds and "rogue.device" in kinds
    finally:
        proc.terminate()
        proc.wait(15)
