"""Portable tests: per-chunk verification before anything is written."""

from firmware.core.errors import IntegrityError, ProtocolError
from firmware.core.update.chunks import (
    chunk_count,
    chunk_span,
    sha256_hex,
    validate_plan,
    verify_chunk,
)
from tests.core.portable import raises

DATA = b"".join(bytes([i % 251]) * 7 for i in range(366))[:2560]  # not periodic per chunk
SIZE = 1024


def _hashes() -> list:
    return [sha256_hex(DATA[i * SIZE:(i + 1) * SIZE]) for i in range(chunk_count(len(DATA), SIZE))]


def test_spans_cover_file() -> None:
    assert chunk_count(len(DATA), SIZE) == 3
    assert chunk_span(2, len(DATA), SIZE) == (2048, 512)


def test_good_chunks_verify() -> None:
    h = _hashes()
    validate_plan(len(DATA), SIZE, h, 10000)
    for i in range(3):
        off, n = chunk_span(i, len(DATA), SIZE)
        verify_chunk(i, DATA[off:off + n], h, len(DATA), SIZE)


def test_tampered_oversized_truncated_chunks_refused() -> None:
    h = _hashes()
    bad = b"x" + DATA[1:SIZE]
    raises(IntegrityError, verify_chunk, 0, bad, h, len(DATA), SIZE)
    raises(IntegrityError, verify_chunk, 2, DATA[2048:] + b"more", h, len(DATA), SIZE)
    raises(ProtocolError, verify_chunk, 1, DATA[SIZE:SIZE + 10], h, len(DATA), SIZE)
    # a chunk moved to another position does not verify
    raises(IntegrityError, verify_chunk, 1, DATA[0:SIZE], h, len(DATA), SIZE)


def test_inconsistent_plans_refused() -> None:
    h = _hashes()
    raises(IntegrityError, validate_plan, len(DATA), SIZE, h[:2], 10000)
    raises(IntegrityError, validate_plan, len(DATA), SIZE, h, 100)
    raises(IntegrityError, validate_plan, len(DATA), 10, h, 10000)
    raises(IntegrityError, validate_plan, 0, SIZE, [], 10000)
    raises(IntegrityError, validate_plan, len(DATA), SIZE, ["zz"] * 3, 10000)
