"""No lost alerts: broker outage mid-traffic, and a gateway killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from firmware.core.events import Event
from host_tools.platform.client import PlatformClient
from tests.conftest import ROOT
from tests.wan.conftest import identity, platform_site, start_broker
from tests.wan.gwharness import run_gateway
from tests.wan.helpers import client, wait
from tests.wan.pki import World


def test_broker_outage_mid_traffic(world: World, tmp_path: Path) -> None:
    broker = start_broker(world, tmp_path / "b")
    broker.persistence = True
    broker.restart()  # persistence on: the platform's session survives the broker restart
    url = "mqtts://localhost:%d" % broker.port
    p = PlatformClient(platform_site(world), url, session_id="platform-test")
    p.connect()
    emitted: list[str] = []
    pending: list[tuple[str, int]] = []
    sevs = ("notice", "warning", "alert", "critical")

    def steps(gw, svc) -> None:
        assert wait(lambda: svc.client.connected)
        stop = threading.Event()

        def producer() -> None:  # steady telemetry the whole time
            n = 0
            while not stop.is_set():
                n += 1
                emitted.append(gw.emit(Event("sensor.reading", "notice", "device",
                                             target="t-%d" % n)).event_id)
                time.sleep(0.005)

        t = threading.Thread(target=producer)
        t.start()
        assert wait(lambda: len(emitted) > 50)
        broker.stop()  # mid-traffic
        assert wait(lambda: not svc.client.connected)
        for i in range(40):  # alerts of every urgency raised during the outage
            emitted.append(gw.emit(Event("intrusion.%d" % i, sevs[i % 4], "device",
                                         target="door-1")).event_id)
        stop.set()
        t.join()
        pending.extend((m.msg_id, m.prio) for m in svc.queue.peek(100000))
        broker.start()
        assert wait(lambda: {m["id"] for m in p.received} >= set(emitted), 60), \
            len(set(emitted) - {m["id"] for m in p.received})

    try:
        run_gateway(identity(world, broker.port), tmp_path / "s", steps)
    finally:
        p.close()
        broker.stop()
    got = [m["id"] for m in p.received if m["type"] != "status"]
    assert len(got) == len(set(got))  # exactly once after de-duplication
    assert set(emitted) <= set(got)
    assert len(pending) >= 40
    # what waited in the queue during the outage arrived in priority order
    prio = dict(pending)
    order = [prio[i] for i in got if i in prio]
    assert order == sorted(order), order


def test_sigkill_loses_nothing_accepted(world: World, tmp_path: Path) -> None:
    broker = start_broker(world, tmp_path / "b")
    p = PlatformClient(platform_site(world), "mqtts://localhost:%d" % broker.port)
    p.connect()
    db = tmp_path / "gw" / "outbox.db"
    cfg = {"gateway": "gw-1", "cert": str(world.gateway.cert_path),
           "key": str(world.gateway.key_path), "ca": str(world.ca.path),
           "verify": world.verify_key.hex(), "port": broker.port, "db": str(db),
           "prefix": "k"}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "tests.wan.killme", str(tmp_path / "cfg.json")],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    accepted: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            accepted.append(line.split()[1])
            # kill once traffic is flowing: some delivered, some in flight, some queued
            if len(accepted) >= 300 and len(p.received) >= 20:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        accepted += [ln.split()[1] for ln in proc.stdout.read().splitlines()
                     if ln.startswith("accepted")]
        delivered_before = {m["id"] for m in p.received if m["id"]}  # not the status
        assert len(delivered_before) < len(accepted)  # the kill left work behind
        c = client(identity(world, broker.port), db)  # the restarted gateway
        try:
            assert wait(lambda: {m["id"] for m in p.received} >= set(accepted), 60), \
                len(set(accepted) - {m["id"] for m in p.received})
            assert wait(lambda: len(c.outbox) == 0)
        finally:
            c.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
        p.close()
        broker.stop()
    got = [m["id"] for m in p.received if m["type"] != "status"]
    assert len(got) == len(set(got)) and set(accepted) <= set(got)
