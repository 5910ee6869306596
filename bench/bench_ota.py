"""OTA benchmarks, each against a bare tool doing the same work on the same bytes in the same run.

- ota_verify: the agent's per-chunk verification (signed SHA-256 per 1 MiB chunk) of a 256 MiB
  file vs `openssl dgst -sha256` of the same file (page cache warm for both).
- ota_install_e2e: a 256 MiB release downloaded over loopback HTTP from the release server,
  verified and written to the inactive slot by `mamori-gateway update` (a fresh sim gateway:
  TUF refresh, download, write, trial boot health check, commit; process start included) vs
  `curl URL | tee FILE | openssl dgst -sha256` from the same server (download, digest, file).
  Throughput in MiB/s of the bundle, best of ROUNDS, interleaved.
- ota_agent_peak_rss: the agent's peak RSS installing the big release vs a small one (flat
  memory: the ratio stays near 1 whatever the release size).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import child_env, need, pick, row
from firmware.common.chunks import chunk_hashes
from firmware.core.update.chunks import chunk_count, chunk_span, verify_chunk
from host_tools.release.bundle import DEFAULT_CHUNK

MiB = 1024 * 1024
BIG = pick(256, 16)
SMALL = pick(32, 4)
ROUNDS = pick(3, 1)


def _make_file(path: Path, size_mib: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size_mib):
            f.write(block[i % 251:] + block[:i % 251])


def _verify(path: Path, length: int, hashes: list[str]) -> None:
    with open(path, "rb") as f:
        for i in range(chunk_count(length, DEFAULT_CHUNK)):
            _, size = chunk_span(i, length, DEFAULT_CHUNK)
            verify_chunk(i, f.read(size), hashes, length, DEFAULT_CHUNK)


def bench_verify(tmp: Path) -> dict[str, Any]:
    """Per-chunk verification vs openssl on the same file."""
    big = tmp / "verify.bin"
    _make_file(big, BIG)
    length, _, hashes = chunk_hashes(big, DEFAULT_CHUNK)
    ours = ossl = float("inf")
    for _ in range(ROUNDS + 1):  # the first round warms the page cache for both
        t0 = time.perf_counter()
        _verify(big, length, hashes)
        ours = min(ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["openssl", "dgst", "-sha256", str(big)], check=True,
                       stdout=subprocess.DEVNULL)
        ossl = min(ossl, time.perf_counter() - t0)
    big.unlink()
    return row("ota_verify_%dMiB" % BIG, "MiB/s", BIG / ours, "openssl dgst -sha256, same file",
               BIG / ossl, bytes=length, rounds=ROUNDS)


# Forks the command from a fresh small interpreter: a child forked from this (large) bench
# process would report this process's RSS as its own peak (ru_maxrss survives fork and exec).
_MEASURE = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"s": time.perf_counter() - t0, "rss": usage.ru_maxrss,
               "rc": os.waitstatus_to_exitcode(status)}, f)
"""


def _timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command; raises with its stderr on failure."""
    fd, out = tempfile.mkstemp(prefix="mamori-bench-ota-")
    os.close(fd)
    try:
        proc = subprocess.run([sys.executable, "-c", _MEASURE, out, *cmd], env=child_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        got = json.loads(Path(out).read_text() or "{}")
    finally:
        os.unlink(out)
    if proc.returncode != 0 or got.get("rc") != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd[:3]), proc.stderr[-600:]))
    return float(got["s"]), int(got["rss"])


class _Release:
    """A published sim release of size_mib and the loopback HTTP server serving its repo."""

    def __init__(self, tmp: Path, name: str, size_mib: int) -> None:
        from host_tools.release.repo import ReleaseRepo
        from host_tools.release.serve import RepoServer

        self.repo = ReleaseRepo.init(tmp / name)
        pay = tmp / (name + "-payload") / "app"
        pay.mkdir(parents=True)
        _make_file(pay / "image.bin", size_mib)
        self.repo.publish("sim", "1.0", pay.parent)
        shutil.rmtree(pay.parent)
        self.bundle = next((self.repo.path / "targets" / "sim").glob("*.firmware.bundle"))
        self.server = RepoServer(self.repo.path)
        self.server.start()
        self.url = self.server.url
        self.tmp = tmp

    def install(self) -> tuple[float, int]:
        """`mamori-gateway update` on a fresh sim gateway; (seconds, peak RSS KiB)."""
        state = self.tmp / "gw"
        shutil.rmtree(state, ignore_errors=True)
        cmd = [str(Path(sys.executable).parent / "mamori-gateway"), "update", "--state-dir",
               str(state), "--from", self.url, "--trust-root",
               str(self.repo.meta_dir / "1.root.json"), "--json"]
        try:
            return _timed(cmd)
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def install_in_process(self) -> float:
        """The same install by an UpdateAgent in this process: no interpreter start or imports."""
        from firmware.common.boards import load_board
        from firmware.gateway.update.agent import UpdateAgent

        state = self.tmp / "gw-inproc"
        shutil.rmtree(state, ignore_errors=True)
        try:
            t0 = time.perf_counter()
            agent = UpdateAgent(state, load_board("sim"), self.url)
            agent.trust_root((self.repo.meta_dir / "1.root.json").read_bytes())
            if agent.run()["result"] != "installed":
                raise RuntimeError("the in-process agent did not install the release")
            return time.perf_counter() - t0
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def curl(self, digest: str = "openssl dgst -sha256") -> float:
        """The bare pipeline from the same server into a file."""
        out = self.tmp / "curl.bin"
        url = "%s/targets/sim/%s" % (self.url, self.bundle.name)
        try:
            return _timed(["bash", "-c", "set -o pipefail; curl -sSf '%s' | tee '%s' | %s "
                           ">/dev/null" % (url, out, digest)])[0]
        finally:
            out.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


def bench_install(tmp: Path) -> list[dict[str, Any]]:
    """End-to-end install vs curl | tee | openssl, and the agent's peak RSS for two sizes."""
    small = _Release(tmp, "small", SMALL)
    try:
        small.install()  # warm-up: bytecode caches, imports in the page cache
        _, rss_small = small.install()
    finally:
        small.close()
    big = _Release(tmp, "big", BIG)
    try:
        mib = big.bundle.stat().st_size / MiB
        ours = base = inproc = float("inf")
        rss_big = 0
        for _ in range(ROUNDS):
            base = min(base, big.curl())
            dt, rss = big.install()
            ours, rss_big = min(ours, dt), max(rss_big, rss)
            inproc = min(inproc, big.install_in_process())
        base_sha256sum = big.curl("sha256sum")
    finally:
        big.close()
    return [
        row("ota_install_e2e_%dMiB" % BIG, "MiB/s", mib / ours,
            "curl URL | tee FILE | openssl dgst -sha256 (same server, same run)", mib / base,
            seconds=round(ours, 3), baseline_seconds=round(base, 3),
            baseline_sha256sum_seconds=round(base_sha256sum, 3), bundle_mib=round(mib, 1),
            agent_peak_rss_kib=rss_big, rounds=ROUNDS, goal="ratio >= 0.5",
            includes="process start, TUF refresh, download+verify, slot write, trial health "
                     "check, commit"),
        row("ota_install_in_process_%dMiB" % BIG, "MiB/s", mib / inproc,
            "curl URL | tee FILE | openssl dgst -sha256 (same server, same run)", mib / base,
            seconds=round(inproc, 3), baseline_seconds=round(base, 3), rounds=ROUNDS,
            note="UpdateAgent.run() in the bench process: the same pass without the command's "
                 "interpreter start and imports"),
        row("ota_agent_peak_rss", "KiB", rss_big, "same agent, %d MiB release" % SMALL,
            rss_small, higher_is_better=False, release_mib=BIG, goal="ratio ~1 (flat)"),
    ]


def run() -> list[dict[str, Any]]:
    """All OTA figures (see the module docstring)."""
    need("openssl", "curl", "tee", "sha256sum")
    tmp = Path(tempfile.mkdtemp(prefix="mamori-bench-ota-"))
    try:
        return [bench_verify(tmp), *bench_install(tmp)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for r in run():
        print(json.dumps(r))
