"""Three network namespaces joined by veth pairs: wan <-> gateway <-> lan.

The gateway namespace gets the WAN and LAN interface names of the board under test (so the
board's firewall ruleset applies unchanged); everything lives in namespaces this module creates
and removes, the host's own interfaces and ruleset are untouched. The firewall tests' lab
(``tests/firewall/netlab.py``) has the same shape with fixed names.
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence

from firmware.core.errors import StateError

GW_WAN, WAN_ADDR = "10.97.1.1", "10.97.1.2"
GW_LAN, LAN_ADDR = "10.97.2.1", "10.97.2.2"
GW_WAN6, WAN_ADDR6 = "fd97:1::1", "fd97:1::2"
GW_LAN6, LAN_ADDR6 = "fd97:2::1", "fd97:2::2"
# The gateway's (WAN, LAN) addresses per address family.
FAMILIES = {"IPv4": (GW_WAN, GW_LAN), "IPv6": (GW_WAN6, GW_LAN6)}
# The gateway namespace answers every closed port at once: a full UDP sweep then takes
# seconds instead of minutes, and a silent port means a silent listener, not a rate limit.
ICMP_UNLIMITED = ("net.ipv4.icmp_ratemask=0", "net.ipv4.icmp_ratelimit=0",
                  "net.ipv6.icmp.ratelimit=0", "net.ipv6.icmp.ratemask=")
_counter = itertools.count()


def sh(args: Sequence[str], check: bool = True, timeout: float = 60.0
       ) -> subprocess.CompletedProcess[str]:
    """Run a command; StateError with its stderr when it fails."""
    try:
        # SIGPIPE stays ignored (Python's setting): sslscan dies of it when a server hangs up.
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              restore_signals=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StateError(f"{shlex.join(args)} could not run: {exc}")
    if check and proc.returncode != 0:
        raise StateError(f"{shlex.join(args)} failed: {proc.stderr.strip()[-400:]}")
    return proc


class Lab:
    """The namespaces plus the processes started in them (all removed by down())."""

    def __init__(self, wan_if: str = "eth0", lan_if: str = "wlan0", prefix: str = "msc") -> None:
        tag = "%s%d-%d" % (prefix, os.getpid(), next(_counter))
        self.gw, self.wan, self.lan = tag + "-gw", tag + "-wan", tag + "-lan"
        self.wan_if, self.lan_if = wan_if, lan_if
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Create namespaces, veth pairs, addresses and routes."""
        try:
            for ns in (self.gw, self.wan, self.lan):
                sh(["ip", "netns", "add", ns])
                sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", self.gw, "link", "add", self.wan_if, "type", "veth",
                "peer", "name", "up0", "netns", self.wan])
            sh(["ip", "-n", self.gw, "link", "add", self.lan_if, "type", "veth",
                "peer", "name", "dev0", "netns", self.lan])
            for ns, dev, addr, addr6 in (
                    (self.gw, self.wan_if, GW_WAN, GW_WAN6), (self.wan, "up0", WAN_ADDR, WAN_ADDR6),
                    (self.gw, self.lan_if, GW_LAN, GW_LAN6), (self.lan, "dev0", LAN_ADDR,
                                                              LAN_ADDR6)):
                sh(["ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev])
                # nodad: usable at once (duplicate detection would delay the scan for seconds)
                sh(["ip", "-n", ns, "addr", "add", addr6 + "/64", "dev", dev, "nodad"])
                sh(["ip", "-n", ns, "link", "set", dev, "up"])
            # The WAN side routes the gateway's LAN prefix through it (as an ISP router could):
            # only the firewall keeps LAN services out of reach from there.
            sh(["ip", "-n", self.wan, "route", "add", "10.97.2.0/24", "via", GW_WAN])
            sh(["ip", "-n", self.wan, "-6", "route", "add", "fd97:2::/64", "via", GW_WAN6])
            sh(["ip", "-n", self.lan, "route", "add", "default", "via", GW_LAN])
            sh(["ip", "-n", self.lan, "-6", "route", "add", "default", "via", GW_LAN6])
            sh(self.exec_args(self.gw, ["sysctl", "-qw", *ICMP_UNLIMITED]))
        except StateError:
            self.down()
            raise

    def exec_args(self, ns: str, args: Sequence[str]) -> list[str]:
        """Command line that runs ARGS inside namespace NS."""
        return ["ip", "netns", "exec", ns, *args]

    def run(self, ns: str, args: Sequence[str], check: bool = True, timeout: float = 120.0
            ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace and wait for it."""
        return sh(self.exec_args(ns, args), check=check, timeout=timeout)

    def start(self, ns: str, args: Sequence[str], cwd: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running process inside a namespace (stopped by down())."""
        p = subprocess.Popen(self.exec_args(ns, args), cwd=cwd, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(p)
        return p

    def down(self) -> None:
        """Stop the processes and delete the namespaces (idempotent)."""
        for p in self.procs:
            _stop(p)
            if p.stderr is not None:
                p.stderr.close()
        self.procs.clear()
        for ns in (self.gw, self.wan, self.lan):
            sh(["ip", "netns", "del", ns], check=False)

    def listening(self, ns: str, proto: str = "tcp") -> set[int]:
        """Ports with a listening socket in namespace NS."""
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        out = self.run(ns, ["ss", flag], check=False).stdout
        ports = set()
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 4 and ":" in cols[3]:
                tail = cols[3].rsplit(":", 1)[1]
                if tail.isdigit():
                    ports.add(int(tail))
        return ports


def _stop(p: subprocess.Popen[bytes]) -> None:
    # Each process was started in its own session: signal its whole group (a shell's children).
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
