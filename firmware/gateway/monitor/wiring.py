"""Which monitor services a gateway runs, from its board profile and state directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError
from firmware.gateway.monitor.neighbours import NeighbourWatcher
from firmware.gateway.monitor.service import MonitorService
from firmware.gateway.runtime.gateway import Gateway, Service

ALLOW_FILE = "monitor/lan-allow"


def read_allowlist(path: Path) -> list[str]:
    """LAN hosts never reported as new stations: one IP or MAC per line, # comments."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError("cannot read the LAN allowlist %s: %s" % (path, exc.strerror))
    out = []
    for line in text.splitlines():
        item = line.split("#", 1)[0].strip()
        if item:
            out.append(item)
    return out


def lan_interface(board: Board) -> str | None:
    """The board's LAN-side interface, or None when the LAN is loopback (sim)."""
    for net in board.network:
        if net.role == "lan" and net.kind != "loopback":
            return net.name
    return None


def monitor_services(gw: Gateway, lan: Any) -> list[Service]:
    """The monitor, plus the neighbour watcher when the LAN is a real (or namespaced) network.

    ``gw.config.monitor`` may name a device or a network namespace to watch.
    """
    monitor = MonitorService(gw, lan=lan)
    services: list[Service] = [monitor]
    dev = gw.config.monitor.lan_dev or lan_interface(gw.board)
    netns = gw.config.monitor.lan_netns
    if dev or netns:
        allow = read_allowlist(gw.state_dir / ALLOW_FILE)
        services.append(NeighbourWatcher(gw, monitor, dev=dev, netns=netns, allow=allow))
    return services
