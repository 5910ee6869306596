"""OTA benchmarks: chunk verification throughput vs `openssl dgst -sha256` on the same file,
and the update agent's peak memory for a 16 MiB vs a 256 MiB bundle (must not grow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware.common.chunks import chunk_hashes  # noqa: E402
from firmware.core.update.chunks import chunk_count, chunk_span, verify_chunk  # noqa: E402
from host_tools.release.bundle import DEFAULT_CHUNK  # noqa: E402

MiB = 1024 * 1024


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            f.write(block[i % 251:] + block[:i % 251])


def _verify(path: Path, length: int, hashes: list[str]) -> None:
    with open(path, "rb") as f:
        for i in range(chunk_count(length, DEFAULT_CHUNK)):
            _, size = chunk_span(i, length, DEFAULT_CHUNK)
            verify_chunk(i, f.read(size), hashes, length, DEFAULT_CHUNK)


def _peak_rss_kib(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError("agent failed: " + err)
    return float(usage.ru_maxrss), status


def run() -> list[dict[str, Any]]:
    """Run both benchmarks; return one dict per figure."""
    out: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="mamori-bench-ota-"))
    try:
        big = tmp / "bundle-256.bin"
        _make_file(big, 256 * MiB)
        length, _, hashes = chunk_hashes(big, DEFAULT_CHUNK)
        _verify(big, length, hashes)  # warm the page cache for both contenders
        t0 = time.perf_counter()
        _verify(big, length, hashes)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(["openssl", "dgst", "-sha256", str(big)], check=True,
                       stdout=subprocess.DEVNULL)
        ossl = time.perf_counter() - t0
        mbps, base = 256 / ours, 256 / ossl
        out.append({"name": "ota_verify_256MiB", "unit": "MiB/s", "value": round(mbps, 1),
                    "baseline_name": "openssl dgst -sha256", "baseline": round(base, 1),
                    "ratio": round(mbps / base, 3)})
        big.unlink()

        from host_tools.release.repo import ReleaseRepo
        repo = ReleaseRepo.init(tmp / "repo")
        rss: dict[int, float] = {}
        for i, size in enumerate((16, 256)):
            pay = tmp / ("p%d" % size) / "app"
            pay.mkdir(parents=True)
            _make_file(pay / "image.bin", size * MiB)
            repo.publish("sim", "1.%d" % i, pay.parent)
            shutil.rmtree(pay.parent)
            state = tmp / ("gw%d" % size)
            env = dict(os.environ)
            cmd = [sys.executable, "-m", "firmware.gateway.cli.main", "update", "--state-dir",
                   str(state), "--from", str(repo.path), "--trust-root",
                   str(repo.meta_dir / "1.root.json")]
            rss[size], _ = _peak_rss_kib(cmd, env)
            shutil.rmtree(state)
        out.append({"name": "ota_agent_peak_rss_256MiB", "unit": "KiB", "value": rss[256],
                    "baseline_name": "same agent, 16 MiB bundle", "baseline": rss[16],
                    "ratio": round(rss[256] / rss[16], 3)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    for row in run():
        print(row)
