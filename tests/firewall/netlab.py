"""Three network namespaces joined by veth pairs: internet <-> gateway <-> lan.

The gateway namespace has 'eth0' (WAN, 10.99.1.1) and 'wlan0' (LAN, 10.99.2.1), the interface
names of the rpi4 board profile, so the real profile's ruleset applies unchanged. Everything
lives in namespaces this module creates; the host's own interfaces and ruleset are untouched.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GW_WAN, INET_ADDR = "10.99.1.1", "10.99.1.2"
GW_LAN, LAN_ADDR = "10.99.2.1", "10.99.2.2"
_counter = itertools.count()


def sh(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command (stdin from INPUT), raising with its stderr on failure."""
    proc = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc


class Lab:
    """The three namespaces, their listeners, and helpers to scan between them."""

    def __init__(self) -> None:
        tag = "mfw%d-%d" % (os.getpid(), next(_counter))
        self.gw, self.inet, self.lan = tag + "-gw", tag + "-inet", tag + "-lan"
        self.procs: list[subprocess.Popen] = []

    def up(self) -> None:
        """Create namespaces, veth pairs, addresses and routes."""
        for ns in (self.gw, self.inet, self.lan):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.gw, "link", "add", "eth0", "type", "veth",
           "peer", "name", "up0", "netns", self.inet)
        sh("ip", "-n", self.gw, "link", "add", "wlan0", "type", "veth",
           "peer", "name", "dev0", "netns", self.lan)
        for ns, dev, addr in ((self.gw, "eth0", GW_WAN), (self.inet, "up0", INET_ADDR),
                              (self.gw, "wlan0", GW_LAN), (self.lan, "dev0", LAN_ADDR)):
            sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # The internet side routes the gateway's LAN prefix through the gateway (as an ISP
        # router could), and the gateway would forward: only the firewall stops it.
        sh("ip", "-n", self.inet, "route", "add", "10.99.2.0/24", "via", GW_WAN)
        sh("ip", "-n", self.lan, "route", "add", "default", "via", GW_LAN)
        sh("ip", "netns", "exec", self.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Unthrottled port-unreachables let the scanner tell 'closed' from 'silent'.
        sh("ip", "netns", "exec", self.gw, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0",
           check=False)

    def down(self) -> None:
        """Stop listeners and delete the namespaces (idempotent)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs.clear()
        for ns in (self.gw, self.inet, self.lan):
            sh("ip", "netns", "del", ns, check=False)

    def listen(self, ns: str, tcp: list[int], udp: list[int]) -> None:
        """Start TCP/UDP listeners in namespace NS and wait until they are bound."""
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.firewall.listen",
             "--tcp", ",".join(map(str, tcp)), "--udp", ",".join(map(str, udp))],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("listener failed: " + (p.stderr.read() if p.stderr else ""))

    def scan(self, ns: str, host: str, tcp: str = "", udp: str = "",
             timeout: float = 0.5) -> dict:
        """Run the scanner inside NS against HOST; returns its JSON result."""
        args = ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.firewall.scanner", host,
                "--timeout", str(timeout)]
        if tcp:
            args += ["--tcp", tcp]
        if udp:
            args += ["--udp", udp]
        proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            raise RuntimeError("scanner failed: " + proc.stderr)
        return json.loads(proc.stdout)

    def nft(self, *args: str, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        """nft inside the gateway namespace (a script on stdin with ``-f -``)."""
        return sh("ip", "netns", "exec", self.gw, "nft", *args, check=check, input=input)
