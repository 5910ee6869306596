"""Deploy throughput to a real MicroPython interpreter (WebAssembly port behind a pty).

Payload bytes per second of `mamori flash deploy` (base64 chunks, temp name, on-device SHA-256
read-back verify, rename) against the same bytes pushed through a bare raw-REPL write loop
(mpremote-style: open, 256-byte ``repr`` chunks, close; no verification) to the same target
in the same run. `mpremote cp` is not measured: it soft-resets on connect, which ends this
target's interpreter.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import pick, row  # noqa: E402
from tests.flash.conftest import SIM_BOARD  # noqa: E402
from tests.flash.target import WasmTarget  # noqa: E402


def _bare_loop(repl: object, files: list, block: int = 256) -> int:
    total = 0
    for f in files:
        path = "/bare" + f.path
        parent = path.rsplit("/", 1)[0]
        repl.exec("_md(%r)\n_bf=open(%r,'wb')\nw=_bf.write" % (parent, path))  # type: ignore[attr-defined]
        for i in range(0, len(f.data), block):
            repl.exec("w(%r)" % f.data[i:i + block])  # type: ignore[attr-defined]
        repl.exec("_bf.close()")  # type: ignore[attr-defined]
        total += len(f.data)
    return total


def run() -> list[dict]:
    """Measure deploy and bare-loop throughput on one fresh target."""
    from firmware.common.boards import load_board
    from host_tools.flash import deploy, payload
    from host_tools.flash.rawrepl import RawRepl
    from host_tools.flash.transport import SerialTransport

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mp-sim.toml").write_text(SIM_BOARD)
        board = load_board("mp-sim", Path(tmp))
    files = payload.build(board, os.urandom(pick(16, 2) * 1024))
    with WasmTarget(heap="4m") as target:
        t = SerialTransport(target.port)
        try:
            repl = RawRepl(t)
            repl.enter(soft_reset=False)
            t0 = time.perf_counter()
            result = deploy.deploy(repl, board, files)
            deploy_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = deploy.deploy(repl, board, files)
            noop_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            bare_bytes = _bare_loop(repl, files)
            bare_s = time.perf_counter() - t0
            repl.leave(soft_reset=False)
        finally:
            t.close()
    assert again.transferred_bytes == 0
    rate = result.transferred_bytes / deploy_s
    bare = bare_bytes / bare_s
    return [row("flash_deploy_throughput", "payload bytes/s", rate,
                "bare raw-REPL write loop (256-byte repr chunks, no verify)", bare,
                payload_bytes=result.transferred_bytes, files=len(files),
                deploy_seconds=round(deploy_s, 3), noop_redeploy_seconds=round(noop_s, 3),
                mpremote_cp="not measured: soft reset on connect ends the WebAssembly target")]


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
