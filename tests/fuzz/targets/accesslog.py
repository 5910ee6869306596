"""Access-log segments and the platform's heads: what someone who altered a log hands the verifier.

A real log (several segments, checkpoints, keys) is built by the gateway's own store. An input
replaces one segment's bytes (first byte: which one) or adds an uploaded head; the real verifier
(``reader.verify``) and record decryption (``reader.records``) run over it. Property: the
verifier always returns a report, and every problem in it says where the log is broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from firmware.common.accesslog import reader
from firmware.common.accesslog.source import LogSource, open_source
from firmware.core.accesslog import docs
from firmware.core.errors import MamoriError
from tests.accesslog.helpers import build_log
from tests.fuzz import world

MAX_LEN = 16384


class MemorySource(LogSource):
    """A LogSource whose segments are bytes in memory (one of them replaced by the input)."""

    def __init__(self, base: LogSource, data: list[bytes]) -> None:
        super().__init__()
        self.__dict__.update({k: v for k, v in base.__dict__.items() if k != "heads"})
        self.heads = list(base.heads)
        self.data = data

    def read_segments(self) -> Iterator[tuple[str, int, bytes, bool]]:
        """The in-memory segments, named like the files."""
        for i, (n, p) in enumerate(self.segments):
            yield p.name, n, self.data[i], i == len(self.segments) - 1


def _source(workdir: Path) -> LogSource:
    state = Path(workdir).resolve() / "log-state"
    if not state.exists():
        build_log(state, records=24)
    return open_source(state)


def seeds(workdir: Path) -> list[bytes]:
    """Each real segment (prefixed with its index) and a real checkpoint as a head."""
    src = _source(workdir)
    out = [bytes([i]) + p.read_bytes() for i, (_n, p) in enumerate(src.segments)]
    return out + [b"\xff" + b'{"t": "checkpoint", "log": "x", "epoch": 1, "seq": 2}']


def setup(workdir: Path) -> Callable[[bytes], None]:
    """The verifier with every key the gateway holds, over the real log with one part replaced."""
    world.quiet()
    base = _source(workdir)
    original = [p.read_bytes() for _n, p in base.segments]

    def one(data: bytes) -> None:
        if not data:
            return
        src = MemorySource(base, list(original))
        if data[0] == 0xFF:
            src.heads.append(docs.parse(data[1:], "head", docs.CHECKPOINT))
        else:
            src.data[data[0] % len(original)] = data[1:]
        rep = reader.verify(src)
        if not isinstance(rep.get("ok"), bool):
            raise AssertionError("the verifier returned no verdict")
        for p in rep["problems"]:
            if not p.get("where") or not p.get("problem"):
                raise AssertionError("a problem without its place: %r" % p)
        try:
            for _rec in reader.records(src):
                pass
        except MamoriError:
            pass
    return one
