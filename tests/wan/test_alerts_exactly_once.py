"""Alerts reach the operator exactly once through a broker stall: the demo gateway fires alerts
while its Mosquitto is SIGSTOPped long enough for `mamori platform watch` (run exactly as the
README shows it) to lose its connection; after SIGCONT every alert is shown, none twice."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT, require
from tests.gateway.helpers import host_cmd, online, wait_for

STALLED = 16


def _children(pid: int, name: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == pid and comm == name:
                out.append(int(entry.name))
    return out


def _established(pid: int, port: int) -> bool:
    """Whether process `pid` has an established TCP connection to 127.0.0.1:`port`."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dport", "= :%d" % port],
                         capture_output=True, text=True).stdout
    return "pid=%d," % pid in out


def _until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def _alert_from(address: str, port: int) -> None:
    """A LAN connection that fails the TLS handshake: one `auth.refused` alert per address."""
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(address, 0)) as s:
        s.sendall(b"not a TLS client hello\r\n\r\n")
        with contextlib.suppress(OSError):
            s.recv(100)


def _shown(log: Path) -> dict[str, int]:
    """How often the watcher printed an auth.refused alert per source address."""
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        f = line.split()
        if len(f) > 4 and f[1] == "alerts" and f[3] == "auth.refused":
            addr = f[4].rsplit(":", 1)[0]
            counts[addr] = counts.get(addr, 0) + 1
    return counts


def test_broker_stall_every_alert_once(tmp_path: Path) -> None:
    require("mosquitto")
    require("ss")
    state = tmp_path / "sim"
    site = tmp_path / "sim-demo-site"
    with (tmp_path / "gateway.log").open("w") as glog:
        gw = subprocess.Popen(host_cmd("demo", "--state-dir", str(state)), cwd=ROOT,
                              stdout=glog, stderr=glog)
    watch: subprocess.Popen[bytes] | None = None
    broker_pid = 0
    try:
        doc = wait_for(state, lambda d: len(online(d)) >= 4 and d["wan"].get("connected"),
                       timeout=120)
        url, lan_port = doc["broker"]["url"], int(doc["lan"]["port"])
        broker_port = int(url.rsplit(":", 1)[1])
        (broker_pid,) = _children(gw.pid, "mosquitto")
        with (tmp_path / "watch.log").open("w") as wlog:  # exactly the README's command line
            watch = subprocess.Popen(host_cmd("platform", "watch", "--broker", url, "--site",
                                              str(site)), cwd=ROOT, stdout=wlog, stderr=wlog)
        # TCP established is not subscribed yet (TLS, CONNECT and SUBSCRIBE follow): an alert
        # sent in between never reaches a new session. The watcher says when it is subscribed.
        _until(lambda: "subscribed" in (tmp_path / "watch.log").read_text(), 60,
               "the watcher to subscribe")
        assert _established(watch.pid, broker_port)
        _alert_from("127.3.0.1", lan_port)  # seen while all is well: the check can see alerts
        _until(lambda: _shown(tmp_path / "watch.log").get("127.3.0.1") == 1, 60,
               "the first alert")

        os.kill(broker_pid, signal.SIGSTOP)
        for i in range(2, 2 + STALLED):
            _alert_from("127.3.0.%d" % i, lan_port)
        # the stall lasts until the watcher gives its connection up (keepalive timeout)
        _until(lambda: not _established(watch.pid, broker_port), 150,
               "the watcher to lose the stalled broker")
        os.kill(broker_pid, signal.SIGCONT)
        broker_pid = 0
        wanted = {"127.3.0.%d" % i for i in range(1, 2 + STALLED)}
        _until(lambda: wanted <= set(_shown(tmp_path / "watch.log")), 120,
               "every alert at the watcher")
    finally:
        if broker_pid:
            os.kill(broker_pid, signal.SIGCONT)
        if watch is not None:
            watch.terminate()
            watch.wait(30)
        gw.terminate()
        gw.wait(60)
    shown = _shown(tmp_path / "watch.log")
    assert {a: n for a, n in shown.items() if n != 1} == {}, shown  # none twice
    assert len(shown) == STALLED + 1
