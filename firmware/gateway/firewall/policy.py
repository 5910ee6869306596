"""What the firewall must allow: interfaces by role and the service's declared LAN ports."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware.common.boardprofile import Board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import ConfigError

PROTOS = ("tcp", "udp")


@dataclass(frozen=True)
class Port:
    """One LAN port the gateway serves, with its new-connection rate limits."""

    proto: str
    port: int
    purpose: str
    rate: int = 100  # new connections per second, all sources together
    burst: int = 200
    per_source_rate: int = 20  # new connections per second from one address
    per_source_burst: int = 40

    def __post_init__(self) -> None:
        if self.proto not in PROTOS:
            raise ConfigError(f"protocol must be tcp or udp, not {self.proto!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port!r} is out of range 1-65535")
        for name in ("rate", "burst", "per_source_rate", "per_source_burst"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} of {self.proto}/{self.port} must be at least 1")

    @property
    def key(self) -> str:
        """'tcp/8883' form used in reports."""
        return f"{self.proto}/{self.port}"


@dataclass(frozen=True)
class Policy:
    """Inputs of the ruleset generator."""

    wan: tuple[str, ...]
    lan: tuple[str, ...]
    ports: tuple[Port, ...]
    icmp_rate: int = 5
    icmp_burst: int = 10
    board: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-data form for --json output."""
        return {
            "board": self.board,
            "wan": list(self.wan),
            "lan": list(self.lan),
            "ports": [
                {
                    "proto": p.proto, "port": p.port, "purpose": p.purpose, "rate": p.rate,
                    "burst": p.burst, "per_source_rate": p.per_source_rate,
                    "per_source_burst": p.per_source_burst,
                }
                for p in self.ports
            ],
            "icmp_rate": self.icmp_rate,
        }


def default_ports(
    device_port: int = LAN_DEVICE_PORT, admin_port: int = ADMIN_HTTPS_PORT
) -> tuple[Port, ...]:
    """The service's declared LAN ports: device TLS and admin HTTPS (tighter limits)."""
    if device_port == admin_port:
        raise ConfigError(f"device port and admin port must differ (both {device_port})")
    return (
        Port("tcp", device_port, "lan-device"),
        Port("tcp", admin_port, "admin-https", rate=20, burst=40,
             per_source_rate=5, per_source_burst=10),
    )


def _real(board: Board, role: str) -> tuple[str, ...]:
    # Loopback interfaces are accepted wholesale by the loopback rule; no per-role rules needed.
    kinds = {i.name: i.kind for i in board.network}
    names = []
    for name in board.interfaces(role):
        if name == "lo" or kinds.get(name) == "loopback" or name in names:
            continue
        names.append(name)
    return tuple(names)


def policy_for_board(
    board: Board,
    device_port: int = LAN_DEVICE_PORT,
    admin_port: int = ADMIN_HTTPS_PORT,
    extra_ports: tuple[Port, ...] = (),
) -> Policy:
    """Policy for a validated board profile (firmware.common.boards.load_board)."""
    wan = _real(board, "wan")
    lan = _real(board, "lan")
    both = set(wan) & set(lan)
    if both:
        raise ConfigError(
            "interface(s) {} have both roles wan and lan".format(", ".join(sorted(both))),
            board.name, "network",
        )
    ports = default_ports(device_port, admin_port) + tuple(extra_ports)
    keys = [p.key for p in ports]
    if len(set(keys)) != len(keys):
        raise ConfigError("a port is declared twice: " + ", ".join(keys))
    return Policy(wan=wan, lan=lan, ports=ports, board=board.name)
