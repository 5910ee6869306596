"""Fuzzing engines for the targets in tests/fuzz/targets: atheris when it installs, else hypothesis.

A target module has ``setup(workdir) -> one_input(bytes)`` and ``seeds(workdir) -> [bytes]``
(valid inputs the project's own code makes). ``one_input`` drives the real parser and its
refusal path and asserts the refusal properties; a ``MamoriError`` is the project's own refusal
and is fine, anything else is an *escape*. Escapes are recorded (one per distinct exception type
and place, with the input saved beside it) and fuzzing goes on, so one run reports every
distinct escape it finds, not only the first.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.core.errors import MamoriError

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("lan", "wan", "bundle", "signed", "accesslog", "boards", "usb", "ble", "admin")
INSTRUMENTED = ["firmware", "host_tools", "provisioning"]
ESCAPES = "escapes.jsonl"
COUNT = "count.json"


def atheris_available() -> bool:
    """True when atheris imports (a wheel exists for this Python)."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _where(exc: BaseException) -> str:
    """The innermost frame of the project's own code that the exception went through."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "/firmware/" in f.filename or "/host_tools/" in f.filename
            or "/provisioning/" in f.filename]
    f = (mine or frames or [None])[-1]
    if f is None:
        return "?"
    return "%s:%s (%s)" % (os.path.relpath(f.filename, ROOT), f.lineno, f.name)


class Recorder:
    """Wraps one_input: counts inputs, keeps going past escapes, records each distinct one."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.workdir = Path(workdir)
        self.target = target
        self.inputs = 0
        self.seen: dict[str, dict[str, Any]] = {}
        self._last_flush = 0.0

    def wrap(self, one: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """The function the engine calls for every input."""

        def run(data: bytes) -> None:
            self.inputs += 1
            try:
                one(data)
            except MamoriError:
                pass  # the project's own refusal
            except Exception as exc:  # an escape: note it, keep fuzzing
                self.escape(exc, data)
            now = time.monotonic()
            if now - self._last_flush > 5:
                self.flush()

        return run

    def escape(self, exc: BaseException, data: bytes) -> None:
        """Record one escape (once per exception type and place)."""
        key = "%s at %s" % (type(exc).__name__, _where(exc))
        if key in self.seen:
            self.seen[key]["count"] += 1
            return
        name = "escape-%s.bin" % hashlib.sha256(data).hexdigest()[:16]
        (self.workdir / name).write_bytes(data)
        rec = {"target": self.target, "exception": key, "message": str(exc)[:300],
               "input": str(self.workdir / name), "count": 1,
               "traceback": traceback.format_exception(exc)[-6:]}
        self.seen[key] = rec
        with (self.workdir / ESCAPES).open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print("ESCAPE %s: %s" % (key, str(exc)[:200]), file=sys.stderr, flush=True)

    def flush(self) -> None:
        """Write the input count (atheris ends the process without returning)."""
        self._last_flush = time.monotonic()
        (self.workdir / COUNT).write_text(json.dumps({"inputs": self.inputs}))


def load_target(target: str, instrument: bool) -> Any:
    """Import tests.fuzz.targets.TARGET (instrumented for coverage when asked)."""
    if target not in TARGETS:
        raise SystemExit("unknown fuzz target %r (known: %s)" % (target, ", ".join(TARGETS)))
    name = "tests.fuzz.targets." + target
    if instrument:
        import atheris

        with atheris.instrument_imports(include=INSTRUMENTED):
            return importlib.import_module(name)
    return importlib.import_module(name)


def run_atheris(target: str, seconds: int, workdir: Path) -> None:
    """Coverage-guided fuzzing (libFuzzer) for `seconds`; never returns (libFuzzer exits)."""
    import atheris

    mod = load_target(target, instrument=True)
    rec = Recorder(workdir, target)
    one = rec.wrap(mod.setup(workdir))
    corpus = ROOT / "build" / "fuzz-corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    for s in mod.seeds(workdir):
        (corpus / ("seed-" + hashlib.sha256(s).hexdigest()[:16])).write_bytes(s)
    max_len = getattr(mod, "MAX_LEN", 65536)
    atheris.Setup([sys.argv[0], "-max_total_time=%d" % seconds, "-print_final_stats=1",
                   "-timeout=30", "-rss_limit_mb=3072", "-max_len=%d" % max_len,
                   "-artifact_prefix=%s/" % workdir, str(corpus)], one)
    try:
        atheris.Fuzz()
    finally:
        rec.flush()


def mutate(rng: random.Random, seed: bytes, pool: list[bytes]) -> bytes:
    """A random structural mutation of a seed (flip, insert, delete, splice, repeat)."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and data:
            del data[pos:pos + rng.randint(1, 16)]
        elif op == 3:
            other = rng.choice(pool)
            a = rng.randrange(len(other) + 1)
            data[pos:pos] = other[a:a + rng.randint(1, 64)]
        elif op == 4:
            tok = rng.choice([b"[", b"{", b"\"", b"NaN", b"Infinity", b"-1", b"1e999", b"null",
                              b"9" * 30, b"\\ud800", b"..", b"/", b"\x00", b"true", b"[]"])
            data[pos:pos] = tok * rng.choice([1, 1, 2, 50, 1000])
        elif op == 5 and data:
            end = min(len(data), pos + rng.randint(1, 32))
            data[pos:pos] = data[pos:end] * rng.randint(2, 20)
        else:
            data[pos:pos + 1] = rng.choice([b"0", b"-", b"\xff", b"\n", b" ", b"'"])
    return bytes(data)


def run_hypothesis(target: str, seconds: int, workdir: Path) -> dict[str, Any]:
    """Property-based fuzzing with a time budget: seeds, their mutations and random bytes."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    mod = load_target(target, instrument=False)
    rec = Recorder(workdir, target)
    one = rec.wrap(mod.setup(workdir))
    pool = list(mod.seeds(workdir)) or [b""]
    for s in pool:
        one(s)
    end = time.monotonic() + seconds
    inputs = st.one_of(
        st.builds(lambda i, r: mutate(random.Random(r), pool[i], pool),
                  st.integers(0, len(pool) - 1), st.integers(0, 2 ** 32)),
        st.binary(max_size=4096))

    @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(inputs)
    def batch(data: bytes) -> None:
        one(data)

    while time.monotonic() < end:
        batch()
    rec.flush()
    return {"inputs": rec.inputs, "escapes": list(rec.seen.values())}
