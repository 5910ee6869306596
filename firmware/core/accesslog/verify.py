"""Verification of an access log over its stored frames (portable, no data key needed).

Checks, segment by segment: framing, segment numbering and continuity, the hash chain, record
sequence numbers, per-record tags and checkpoint seals (with key_0), checkpoint signatures
(with a caller-supplied verify callable), epoch continuity, that the log is sealed at all, that
pruning was declared, and truncation against the platform's heads and the sealing key's epoch.
Every problem names its place (segment file, offset, sequence number, epoch).
"""

from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.docs import parse_checkpoint
from firmware.core.accesslog.encoding import canonical
from firmware.core.accesslog.writer import (
    checkpoint_signed_part,
    checkpoint_unsigned,
    split_record,
)
from firmware.core.errors import IntegrityError, ProtocolError

MAX_PROBLEMS = 50
# Epochs are forged input: key_e costs e HMAC steps from key_0, so derivation is bounded by what
# the log can have reached (heads, the sealing key's epoch) plus this margin, and keys are kept
# every LADDER epochs so going back never restarts from key_0.
MAX_UNANCHORED_EPOCHS = 1 << 20
MAX_KEY_EPOCH = 1 << 24
LADDER = 4096


def _head_epoch(hd: object) -> int:
    """Sort key of an uploaded head (forged input: a non-integer epoch sorts first)."""
    e = hd.get("epoch") if isinstance(hd, dict) else None
    return e if isinstance(e, int) and not isinstance(e, bool) else -1


class Verifier:
    """Feed segments in order with feed(), then call finish() for the report."""

    def __init__(self, key0: "bytes | None" = None, pub: "bytes | None" = None,
                 sig_verify: object = None, log_id: "str | None" = None,
                 heads: "list | None" = None, key_epoch: "int | None" = None,
                 key_now: "bytes | None" = None) -> None:
        self.key0 = key0
        self.pub = pub
        self.pub_from_log = False
        self.sig_verify = sig_verify
        self.log_id = log_id or ""
        self.heads = heads or []
        self.key_epoch = key_epoch
        self.key_now = key_now
        self.problems: "list[dict]" = []
        self.warnings: "list[str]" = []
        self.h = b""  # empty until the first segment
        self.seq = 0
        self.epoch = 0
        self._kepoch = -1
        self._kval = b""
        self._ladder: dict = {}
        bound = 0
        for hd in self.heads:
            e = hd.get("epoch") if isinstance(hd, dict) else None
            if isinstance(e, int) and 0 <= e <= MAX_KEY_EPOCH and e > bound:
                bound = e
        if isinstance(key_epoch, int) and bound < key_epoch <= MAX_KEY_EPOCH:
            bound = key_epoch
        self.epoch_bound = bound + MAX_UNANCHORED_EPOCHS
        self._unreachable = False
        self.cps: "dict[int, tuple]" = {}
        self.first_seg = -1
        self.first_header: dict = {}
        self.last_seg = -1
        self.base: dict = {}
        self.records = 0
        self.checkpoints = 0
        self.unsealed = 0
        self.last_cp: dict = {}
        self.first_seq = -1
        self.segments = 0

    # -- helpers ---------------------------------------------------------------------------
    def _problem(self, what: str, where: str, **extra: object) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            p: dict = {"where": where, "problem": what}
            for k in extra:
                p[k] = extra[k]
            self.problems.append(p)

    def _key(self, epoch: int, where: str = "log") -> "bytes | None":
        if self.key0 is None:
            return None
        if not isinstance(epoch, int) or epoch < 0 or epoch > self.epoch_bound:
            if not self._unreachable:
                self._unreachable = True
                self._problem("epoch %s is beyond any epoch this log can have reached (limit "
                              "%d): forged; its seals are not checked" % (epoch, self.epoch_bound),
                              where, epoch=epoch)
            return None
        if self._kepoch < 0 or self._kepoch > epoch:
            start = epoch - epoch % LADDER
            while start > 0 and start not in self._ladder:
                start -= LADDER
            self._kepoch = start
            self._kval = self._ladder[start] if start else bytes(self.key0)
        k = self._kval
        for e in range(self._kepoch + 1, epoch + 1):
            k = chain.evolve(k)
            if e % LADDER == 0:
                self._ladder[e] = k
        self._kepoch = epoch
        self._kval = k
        return k

    # -- feeding ---------------------------------------------------------------------------
    def feed(self, name: str, number: int, data: bytes, is_last: bool = False) -> None:
        """Verify one segment file (its name, its number from the name, its bytes)."""
        self.segments += 1
        frames, end, trouble = framing.scan(data, allow_torn=is_last)
        if not frames or frames[0][1] != framing.HEADER:
            if frames or trouble is None or data[:1] != framing.HEADER:
                self._problem("does not start with a segment header: not a Mamori access-log "
                              "segment", name + " offset 0", segment=name)
            else:
                self._problem("unreadable segment header (" + trouble[1] + ")",
                              name + " offset 0", segment=name)
            return
        try:
            hdr = framing.parse_header(frames[0][2])
        except IntegrityError as exc:
            self._problem(exc.message, name + " offset 0", segment=name)
            return
        if not self.log_id:
            self.log_id = hdr["log"]
        elif hdr["log"] != self.log_id:
            self._problem("segment belongs to another log (%s, expected %s)"
                          % (hdr["log"], self.log_id), name, segment=name)
            return
        if hdr["seg"] != number:
            self._problem("header says segment %d: file renamed or moved" % hdr["seg"], name,
                          segment=name)
        if self.last_seg >= 0 and number != self.last_seg + 1:
            self._problem("segment(s) %d..%d missing (removed)" % (self.last_seg + 1, number - 1),
                          "before " + name, segment=name)
        if not self.h:
            self.first_seg = number
            self.first_header = hdr
            self.first_seq = hdr["seq"]
            if number == 0 and (hdr["prev_bytes"] != chain.genesis(hdr["log"])
                                or hdr["seq"] != 1 or hdr["epoch"] != 0):
                self._problem("first segment does not start at the log's genesis", name,
                              segment=name)
        elif hdr["prev_bytes"] != self.h or hdr["seq"] != self.seq or hdr["epoch"] != self.epoch:
            self._problem("segment does not continue the previous one (chain value, sequence "
                          "%d/%d or epoch %d/%d differ)" % (hdr["seq"], self.seq, hdr["epoch"],
                                                            self.epoch), name + " offset 0",
                          segment=name)
        self.last_seg = number
        self.seq = hdr["seq"]
        self.epoch = hdr["epoch"]
        h = chain.step(hdr["prev_bytes"], framing.HEADER, frames[0][2])
        for off, ftype, body in frames[1:]:
            where = "%s offset %d" % (name, off)
            if ftype == framing.RECORD:
                h = self._record(h, body, where, name)
            elif ftype == framing.CHECKPOINT:
                h = self._checkpoint(h, body, where, name)
            else:
                self._problem("second header inside a segment (inserted)", where, segment=name)
                h = chain.step(h, ftype, body)
        self.h = h
        if trouble is not None:
            where = "%s offset %d" % (name, end)
            if trouble[0] == "torn":
                self.warnings.append(where + ": unfinished write at the end of the log (crash "
                                     "during an append; ignored)")
            else:
                self._problem(trouble[1] + " (damaged or tampered)", where, segment=name)

    def _record(self, h: bytes, body: bytes, where: str, name: str) -> bytes:
        try:
            seq = split_record(body)[0]
        except IntegrityError as exc:
            self._problem(exc.message, where, segment=name)
            return chain.step(h, framing.RECORD, body)
        where = where + " record seq %d" % seq
        if seq != self.seq:
            if seq > self.seq:
                self._problem("records seq %d..%d missing (deleted)" % (self.seq, seq - 1), where,
                              segment=name, seq=seq)
            else:
                self._problem("record seq %d where seq %d was expected (inserted, duplicated or "
                              "reordered)" % (seq, self.seq), where, segment=name, seq=seq)
        h = chain.step(h, framing.RECORD, body[:-chain.TAG_LEN])
        key = self._key(self.epoch, where)
        if key is not None and not chain.equal(chain.record_tag(key, h), body[-chain.TAG_LEN:]):
            self._problem("record fails its epoch-%d tag (edited, inserted or re-sealed)"
                          % self.epoch, where, segment=name, seq=seq)
        self.seq = seq + 1
        self.records += 1
        self.unsealed += 1
        return h

    def _checkpoint(self, h: bytes, body: bytes, where: str, name: str) -> bytes:
        nxt = chain.step(h, framing.CHECKPOINT, body)
        try:
            cp = parse_checkpoint(body)
        except ProtocolError as exc:
            self._problem("malformed checkpoint (%s)" % exc.message, where, segment=name)
            return nxt
        head = chain.unhex(cp["head"])
        seal = chain.unhex(cp["seal"])
        sig = chain.unhex(cp["sig"])
        epoch = cp["epoch"]
        where = where + " checkpoint epoch %d" % epoch
        if cp["log"] != self.log_id:
            self._problem("checkpoint of another log", where, segment=name, epoch=epoch)
        if epoch != self.epoch:
            if epoch > self.epoch:
                what = "epoch(s) %d..%d missing (checkpoint removed)" % (self.epoch, epoch - 1)
            else:
                what = "epoch %d again after epoch %d (replayed or replaced checkpoint)" \
                    % (epoch, self.epoch - 1)
            self._problem(what, where, segment=name, epoch=epoch)
        if not chain.equal(head, h):
            self._problem("chain broken before this checkpoint: records seq %d..%d were altered, "
                          "inserted or removed" % (self.seq - self.unsealed, self.seq - 1),
                          where, segment=name, epoch=epoch)
            nxt = chain.step(head, framing.CHECKPOINT, body)
        if cp["seq"] != self.seq - 1:
            self._problem("checkpoint covers seq %s but the last record is seq %d"
                          % (cp["seq"], self.seq - 1), where, segment=name, epoch=epoch)
        key = self._key(epoch, where)
        if key is not None and not chain.equal(
                chain.seal(key, canonical(checkpoint_unsigned(cp))), seal):
            self._problem("checkpoint seal invalid (replaced or re-sealed with another key)",
                          where, segment=name, epoch=epoch)
        if epoch == 0 and "pub" in cp:
            logged = chain.unhex(cp["pub"])
            if self.pub is None:
                self.pub = logged
                self.pub_from_log = True
            elif logged != self.pub:
                self._problem("genesis names another signing key than the platform's copy",
                              where, segment=name, epoch=epoch)
        if self.sig_verify is not None and self.pub is not None:
            if not self.sig_verify(self.pub, checkpoint_signed_part(cp), sig):  # type: ignore
                self._problem("checkpoint signature invalid", where, segment=name, epoch=epoch)
        if self.base and cp["base"].get("seg", 0) < self.base.get("seg", 0):
            self._problem("checkpoint declares an older retention base than before", where,
                          segment=name, epoch=epoch)
        self.base = cp["base"]
        self.cps[epoch] = (cp["head"], cp["seq"], where)
        self.last_cp = cp
        self.checkpoints += 1
        self.epoch = epoch + 1
        self.unsealed = 0
        return nxt

    # -- end -------------------------------------------------------------------------------
    def finish(self) -> dict:
        """Run the whole-log checks and return the report."""
        if self.segments == 0:
            self._problem("no access-log segments found", "log")
        elif self.h and not self.last_cp:
            self._problem("the log has no checkpoint at all: nothing is sealed or signed",
                          "log")
        if self.first_seg > 0 and self.last_cp:
            base = self.base or {}
            bseg = base.get("seg")
            if not isinstance(bseg, int):
                self._problem("log starts at segment %d but no checkpoint declares older "
                              "segments pruned" % self.first_seg, "start of log")
            elif bseg < self.first_seg:
                self._problem("segment(s) %d..%d missing at the start (removed, not pruned)"
                              % (bseg, self.first_seg - 1), "start of log")
            elif bseg == self.first_seg and (base.get("seq") != self.first_header["seq"]
                                             or base.get("prev") != self.first_header["prev"]):
                self._problem("oldest segment does not match the declared retention base",
                              "start of log")
        if self.key0 is not None and self.key_epoch is not None and self.key_now is not None \
                and not chain.equal(self._key(self.key_epoch, "sealing key") or b"",
                                    self.key_now):
            self._problem("the gateway's sealing key does not belong to epoch %d (key file "
                          "rolled back or replaced)" % self.key_epoch, "sealing key")
        if self.last_cp.get("rotate") is True and self.last_cp.get("seg") == self.last_seg \
                and self.key_epoch == self.last_cp.get("epoch"):
            self.warnings.append("a crash interrupted a segment rotation (repaired on the next "
                                 "start)")
        elif self.last_cp.get("rotate") is True and self.last_cp.get("seg") == self.last_seg:
            self._problem("segment %d missing at the end (the last checkpoint closed segment %d)"
                          % (self.last_seg + 1, self.last_seg), "end of log")
        last_epoch = self.last_cp["epoch"] if self.last_cp else -1
        first_epoch = min(self.cps) if self.cps else 0
        for hd in sorted(self.heads, key=_head_epoch):
            e = _head_epoch(hd)
            if not isinstance(hd, dict) or hd.get("log") != self.log_id or e < 0:
                self._problem("an uploaded head belongs to another log", "heads")
                continue
            if e in self.cps:
                if hd.get("head") != self.cps[e][0] or hd.get("seq") != self.cps[e][1]:
                    self._problem("checkpoint differs from the head uploaded to the platform "
                                  "(replaced)", self.cps[e][2], epoch=e)
            elif e > last_epoch:
                self._problem("log truncated: it ends at epoch %d (seq %s) but the platform "
                              "holds a head for epoch %d (seq %s)"
                              % (last_epoch, self.last_cp.get("seq", "-"), e,
                                 hd.get("seq")), "end of log", epoch=e)
                break
            elif e > first_epoch:
                self._problem("checkpoint epoch %d is missing but was uploaded" % e,
                              "epoch %d" % e, epoch=e)
        if self.key_epoch is not None and self.last_cp:
            if last_epoch + 1 < self.key_epoch:
                self._problem("log truncated: the sealing key is at epoch %d but the last "
                              "checkpoint is epoch %d" % (self.key_epoch, last_epoch),
                              "end of log", epoch=last_epoch)
            elif last_epoch > self.key_epoch:
                self._problem("checkpoint epoch %d is newer than the sealing key (epoch %d)"
                              % (last_epoch, self.key_epoch), "end of log", epoch=last_epoch)
        if self.unsealed:
            self.warnings.append("%d record(s) after the last checkpoint are not sealed yet"
                                 % self.unsealed)
        if self.key0 is None:
            self.warnings.append("record tags and seals not checked: no seal-verification key")
        if self.sig_verify is None or self.pub is None:
            self.warnings.append("checkpoint signatures not checked: no public key")
        elif self.pub_from_log:
            self.warnings.append("signatures checked against the key recorded in the log "
                                 "itself (give the platform's copy to pin it)")
        return {
            "ok": not self.problems,
            "log_id": self.log_id,
            "segments": self.segments,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "first_seq": self.first_seq if self.h else None,
            "last_seq": (self.seq - 1) if self.h else None,
            "last_epoch": last_epoch,
            "unsealed": self.unsealed,
            "first_problem": self.problems[0] if self.problems else None,
            "problems": self.problems,
            "warnings": self.warnings,
        }
