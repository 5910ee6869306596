"""Typed configuration of a running gateway: what `mamori-gateway run` was asked to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AdminConfig:
    """The local admin API: address and port (None: the LAN address, the declared port)."""

    host: str | None = None
    port: int | None = None


@dataclass
class FirewallConfig:
    """Where the firewall applies (a network namespace on the sim board) and how often."""

    netns: str | None = None
    interval: float = 60.0


@dataclass
class MonitorConfig:
    """The LAN the neighbour watcher observes (default: the board's LAN interface)."""

    lan_dev: str | None = None
    lan_netns: str | None = None


@dataclass
class UsbConfig:
    """A sysfs-shaped tree for the USB guard (the sim board touches no real USB)."""

    sysfs: Path | None = None


@dataclass
class GatewayConfig:
    """Everything `mamori-gateway run` was asked to do."""

    board_name: str
    state_dir: Path
    duration: float | None = None
    bundle: Path | None = None
    broker: str | None = None
    sim_house: Path | None = None
    lan_host: str = "127.0.0.1"
    lan_port: int | None = None  # None: as installed before, else the board's (runtime/endpoint.py)
    status_interval: float = 1.0
    admin: AdminConfig = field(default_factory=AdminConfig)
    firewall: FirewallConfig = field(default_factory=FirewallConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    usb: UsbConfig = field(default_factory=UsbConfig)
