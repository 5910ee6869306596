"""Sans-I/O writer of the chained, tagged, sealed frame stream (portable).

The caller encrypts, signs and writes; this keeps the chain state (next sequence number, chain
value, seal key) and produces the exact bytes to append.
"""

import struct

from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.encoding import canonical, decode
from firmware.core.errors import IntegrityError

NONCE_LEN = 12
SEQ_LEN = 8
MIN_RECORD = SEQ_LEN + NONCE_LEN + 16 + chain.TAG_LEN


def record_aad(log_id: str, seq: int) -> bytes:
    """AEAD associated data: binds a ciphertext to its log and position."""
    return b"mamori-accesslog-v1|" + log_id.encode() + b"|" + struct.pack(">Q", seq)


def split_record(body: bytes) -> tuple:
    """(seq, nonce, ciphertext, tag) of a record body; IntegrityError when malformed."""
    if len(body) < MIN_RECORD:
        raise IntegrityError("record of %d bytes is too short" % len(body))
    seq = struct.unpack(">Q", body[:SEQ_LEN])[0]
    return seq, body[SEQ_LEN:SEQ_LEN + NONCE_LEN], body[SEQ_LEN + NONCE_LEN:-chain.TAG_LEN], \
        body[-chain.TAG_LEN:]


def checkpoint_unsigned(cp: dict) -> dict:
    """The checkpoint fields covered by the seal (everything but seal and signature)."""
    out = {}
    for k in cp:
        if k not in ("seal", "sig"):
            out[k] = cp[k]
    return out


def checkpoint_signed_part(cp: dict) -> bytes:
    """The bytes the gateway's signature covers (everything but the signature)."""
    out = {}
    for k in cp:
        if k != "sig":
            out[k] = cp[k]
    return canonical(out)


class ChainWriter:
    """Chain state of one log; every method returns a frame to append."""

    def __init__(self, log_id: str, seal_key: chain.SealKey, h: bytes, next_seq: int) -> None:
        self.log_id = log_id
        self.seal_key = seal_key
        self.h = h
        self.next_seq = next_seq
        self.unsealed = 0

    @property
    def last_seq(self) -> int:
        """Sequence number of the last record written (0 before the first)."""
        return self.next_seq - 1

    def header(self, segment: int) -> bytes:
        """The header frame that starts a segment."""
        body = framing.encode_header(self.log_id, segment, self.next_seq, self.h,
                                     self.seal_key.epoch)
        self.h = chain.step(self.h, framing.HEADER, body)
        return framing.encode_frame(framing.HEADER, body)

    def record(self, nonce: bytes, ciphertext: bytes) -> bytes:
        """The frame of the next record (already encrypted with record_aad(log, next_seq))."""
        signed = struct.pack(">Q", self.next_seq) + nonce + ciphertext
        self.h = chain.step(self.h, framing.RECORD, signed)
        body = signed + chain.record_tag(self.seal_key.key, self.h)
        frame = framing.encode_frame(framing.RECORD, body)
        self.next_seq += 1
        self.unsealed += 1
        return frame

    def checkpoint(self, fields: dict, sign: object) -> tuple:
        """Close the epoch: returns (frame, checkpoint dict); the seal key has evolved."""
        cp = {}
        for k in fields:
            cp[k] = fields[k]
        cp["t"] = "checkpoint"
        cp["log"] = self.log_id
        cp["epoch"] = self.seal_key.epoch
        cp["seq"] = self.last_seq
        cp["head"] = chain.hexs(self.h)
        cp["seal"] = chain.hexs(chain.seal(self.seal_key.key, canonical(cp)))
        cp["sig"] = chain.hexs(sign(checkpoint_signed_part(cp)))  # type: ignore[operator]
        body = canonical(cp)
        self.h = chain.step(self.h, framing.CHECKPOINT, body)
        self.seal_key.evolve()
        self.unsealed = 0
        return framing.encode_frame(framing.CHECKPOINT, body), cp


def resume(frames: list) -> dict:
    """Chain state at the end of a segment's frames (trusting them: the store's own file).

    Returns {"header", "h", "next_seq", "last_epoch" (-1 if none), "unsealed", "last_cp"}.
    """
    if not frames or frames[0][1] != framing.HEADER:
        raise IntegrityError("segment does not start with a header")
    hdr = framing.parse_header(frames[0][2])
    h = chain.step(hdr["prev_bytes"], framing.HEADER, frames[0][2])
    next_seq = hdr["seq"]
    last_epoch = hdr["epoch"] - 1
    unsealed = 0
    last_cp: dict = {}
    for _off, ftype, body in frames[1:]:
        if ftype == framing.RECORD:
            seq = split_record(body)[0]
            h = chain.step(h, ftype, body[:-chain.TAG_LEN])
            next_seq = seq + 1
            unsealed += 1
        elif ftype == framing.CHECKPOINT:
            last_cp = decode(body)
            last_epoch = last_cp["epoch"]
            h = chain.step(h, ftype, body)
            unsealed = 0
        else:
            raise IntegrityError("second header inside a segment")
    return {"header": hdr, "h": h, "next_seq": next_seq, "last_epoch": last_epoch,
            "unsealed": unsealed, "last_cp": last_cp}
