"""Per-chunk hash bookkeeping for resumable, verify-before-write downloads (portable)."""

import binascii
import hashlib

from firmware.core.errors import IntegrityError, ProtocolError

MIN_CHUNK = 1024
MAX_CHUNK = 64 * 1024 * 1024


def sha256_hex(data: "bytes | memoryview") -> str:
    """Lower-case hex SHA-256 of data."""
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def chunk_count(length: int, chunk_size: int) -> int:
    """How many chunks cover `length` bytes."""
    return (length + chunk_size - 1) // chunk_size


def chunk_span(index: int, length: int, chunk_size: int) -> tuple:
    """(offset, size) of chunk `index`."""
    start = index * chunk_size
    end = start + chunk_size
    if end > length:
        end = length
    return (start, end - start)


def validate_plan(length: int, chunk_size: int, hashes: list, max_length: int) -> None:
    """Refuse a chunk plan that is inconsistent or larger than the gateway accepts."""
    if not isinstance(length, int) or length <= 0:
        raise IntegrityError("release length %r is invalid" % (length,))
    if length > max_length:
        raise IntegrityError("release is %d bytes, more than the %d this gateway accepts" % (
            length, max_length), "endless-data protection: refused before download")
    if not isinstance(chunk_size, int) or chunk_size < MIN_CHUNK or chunk_size > MAX_CHUNK:
        raise IntegrityError("chunk size %r is outside %d..%d" % (chunk_size, MIN_CHUNK, MAX_CHUNK))
    if not isinstance(hashes, list) or len(hashes) != chunk_count(length, chunk_size):
        raise IntegrityError("release metadata lists %s chunk hashes, %d expected" % (
            len(hashes) if isinstance(hashes, list) else "no",
            chunk_count(length, chunk_size)))
    for h in hashes:
        if not isinstance(h, str) or len(h) != 64:
            raise IntegrityError("release metadata carries a malformed chunk hash")


def verify_chunk(index: int, data: "bytes | memoryview", hashes: list, length: int,
                 chunk_size: int) -> None:
    """Raise unless `data` is exactly chunk `index` as signed in the release metadata."""
    _, size = chunk_span(index, length, chunk_size)
    if len(data) > size:
        raise IntegrityError("chunk %d is longer than signed (%d > %d bytes)" % (
            index, len(data), size), "endless-data protection: nothing written")
    if len(data) < size:
        raise ProtocolError("chunk %d is truncated (%d < %d bytes)" % (index, len(data), size),
                            "the download resumes from this chunk next time")
    if sha256_hex(data) != hashes[index]:
        raise IntegrityError("chunk %d does not match its signed hash" % index,
                             "the image was tampered with or substituted; nothing written")
