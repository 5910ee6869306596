"""MicroPython raw REPL client: robust entry, plain raw REPL and raw-paste with fallback.

Protocol (MicroPython docs/reference/repl.rst): Ctrl-A enters the raw REPL, which answers
``raw REPL; CTRL-B to exit\\r\\n>``; code followed by Ctrl-D runs and answers ``OK``, stdout,
``\\x04``, stderr, ``\\x04``, ``>``. Raw-paste (``\\x05A\\x01``) adds flow control; a board
that answers ``R\\x01`` and then breaks the flow-control rules is detected, recovered with
Ctrl-C and re-entry, and the session continues in plain raw REPL.
"""

from __future__ import annotations

import struct
import time
from typing import Protocol

from host_tools.flash.errors import NotAnsweringError, TargetError

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
SOFT_REBOOT = b"soft reboot\r\n"
# Platforms whose raw-paste is known to wedge the interpreter (MicroPython's WebAssembly port
# answers R\x01 and then spins forever): never try raw-paste on them.
RAW_PASTE_BROKEN = ("webassembly",)


class Transport(Protocol):
    """What the client needs from a port."""

    def write(self, data: bytes) -> None: ...  # noqa: D102
    def read_some(self, timeout: float) -> bytes: ...  # noqa: D102
    def drain(self, quiet: float = 0.05, limit: float = 1.0) -> bytes: ...  # noqa: D102


class RemoteError(TargetError):
    """Code run on the board raised an exception."""


class RawRepl:
    """A raw REPL session on a transport."""

    def __init__(self, transport: Transport, raw_paste: str = "auto", attempts: int = 5,
                 timeout: float = 10.0, block: int = 256) -> None:
        if raw_paste not in ("auto", "on", "off"):
            raise ValueError("raw_paste must be auto, on or off")
        self.t = transport
        self.mode = raw_paste
        self.attempts = attempts
        self.timeout = timeout
        self.block = block
        self.use_raw_paste = raw_paste != "off"
        self.raw_paste_fallback = ""  # why raw-paste was abandoned, if it was
        self.platform = ""
        self._buf = b""
        self.platform = ""

    # -- low level ------------------------------------------------------------------------
    def _fill(self, timeout: float) -> bool:
        chunk = self.t.read_some(timeout)
        self._buf += chunk
        return bool(chunk)

    def _read_until(self, marker: bytes, timeout: float) -> bytes | None:
        """Bytes up to and including MARKER, or None after TIMEOUT seconds of silence."""
        idle_deadline = time.monotonic() + timeout
        while True:
            k = self._buf.find(marker)
            if k >= 0:
                out, self._buf = self._buf[:k + len(marker)], self._buf[k + len(marker):]
                return out
            if self._fill(0.05):
                idle_deadline = time.monotonic() + timeout
            elif time.monotonic() >= idle_deadline:
                return None

    def _read_exact(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self._buf) < n and time.monotonic() < deadline:
            self._fill(0.05)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _pending(self) -> bool:
        return bool(self._buf) or self._fill(0.0)

    def enter(self, soft_reset: bool) -> None:
        """Interrupt what runs, enter the raw REPL (retrying with back-off), optionally reset."""
        delay = 0.1
        for _ in range(self.attempts):
            self.t.write(b"\r\x03\x03")
            time.sleep(delay)
            self._buf = b""
            self.t.drain(quiet=0.05, limit=max(1.0, delay * 4))
            self.t.write(b"\x01")
            if self._read_until(RAW_BANNER, timeout=max(0.5, delay * 4)) is not None:
                if soft_reset:
                    self._soft_reset_raw()
                return
            delay = min(delay * 2, 2.0)
        raise NotAnsweringError(
            "the board does not answer the raw REPL (%d attempts)" % self.attempts,
            "check the port and baud rate, press the board's reset button, and make sure "
            "MicroPython is installed on it",
        )

    def _soft_reset_raw(self) -> None:
        self.t.write(b"\x04")
        got = self._read_until(SOFT_REBOOT, self.timeout)
        if got is None or self._read_until(RAW_BANNER, self.timeout) is None:
            raise NotAnsweringError("the board did not come back after a soft reset",
                                    "use --no-reset for boards that cannot soft-reset")

    def leave(self, soft_reset: bool) -> None:
        """Leave the raw REPL for the friendly REPL; soft-reset (run main.py) if asked."""
        self.t.write(b"\x02")
        if soft_reset:
            self.t.write(b"\x04")
        self.t.drain(quiet=0.1, limit=1.0)

    # -- execution ------------------------------------------------------------------------
    def exec(self, code: str, timeout: float | None = None) -> str:
        """Run CODE on the board; return its stdout; raise RemoteError with its traceback."""
        data = code.encode("utf-8")
        wait = timeout if timeout is not None else self.timeout
        if self.use_raw_paste and self.mode == "auto" and not self.platform:
            self.probe()  # never try raw-paste before knowing whether the platform breaks it
        if self.use_raw_paste and self._try_raw_paste(data, wait):
            return self._finish(wait)
        self._send_plain(data, wait)
        return self._finish(wait)

    def _send_plain(self, data: bytes, wait: float) -> None:
        for i in range(0, len(data), self.block):
            self.t.write(data[i:i + self.block])
        self.t.write(b"\x04")
        got = self._read_until(b"OK", wait)
        if got is None:
            raise NotAnsweringError("the board stopped answering in the raw REPL",
                                    "reset the board and run the command again")
        if got != b"OK":
            raise TargetError("unexpected answer from the raw REPL: %r" % got[-60:])

    def _finish(self, wait: float) -> str:
        out = self._read_until(b"\x04", wait)
        err = self._read_until(b"\x04", wait) if out is not None else None
        if out is None or err is None:
            raise NotAnsweringError("the board stopped answering while running a command",
                                    "reset the board and run the command again")
        if self._read_until(b">", wait) is None:
            raise NotAnsweringError("the board did not return to the raw REPL prompt")
        text = err[:-1].decode("utf-8", "replace").strip()
        if text:
            raise RemoteError("the board raised an error: " + text.splitlines()[-1], text)
        return out[:-1].decode("utf-8", "replace")

    def _try_raw_paste(self, data: bytes, wait: float) -> bool:
        """Send DATA in raw-paste mode; False means 'use plain raw REPL' (after recovery)."""
        self.t.write(b"\x05A\x01")
        head = self._read_exact(2, 2.0)
        if head == b"R\x00":
            self._abandon_raw_paste("the board does not support raw-paste", recover=False)
            return False
        if head != b"R\x01":
            # Older firmware took the bytes as code: resynchronise on the raw REPL banner.
            self._read_until(RAW_BANNER, 1.0)
            self._abandon_raw_paste("the board does not know raw-paste", recover=False)
            return False
        win = self._read_exact(2, 2.0)
        if len(win) != 2:
            self._abandon_raw_paste("no raw-paste window size")
            return False
        (increment,) = struct.unpack("<H", win)
        if increment == 0:
            self._abandon_raw_paste("raw-paste window of zero bytes")
            return False
        grants = 0  # window top-ups: each one means the board consumed `increment` bytes
        remain = increment
        i = 0
        while i < len(data):
            while remain == 0 or self._pending():
                b = self._read_exact(1, wait)
                if b == b"\x01":
                    grants += 1
                    remain += increment
                    if grants > i // increment:
                        # A board cannot free window space for bytes it has not received.
                        self._abandon_raw_paste("the board granted raw-paste window it had "
                                                "not freed")
                        return False
                elif b == b"\x04":
                    # End of reception before the code was complete: the code did not run as
                    # sent, so this board's raw-paste is unusable.
                    self._abandon_raw_paste("the board ended raw-paste reception early")
                    return False
                else:
                    self._abandon_raw_paste("bad raw-paste flow-control byte %r" % b)
                    return False
            n = min(remain, len(data) - i)
            self.t.write(data[i:i + n])
            remain -= n
            i += n
        self.t.write(b"\x04")
        ack = self._read_until(b"\x04", wait)
        if ack is None:
            self._abandon_raw_paste("the board did not acknowledge the end of raw-paste")
            return False
        extra = ack[:-1]
        if extra.strip(b"\x01") or grants + len(extra) > len(data) // increment:
            self._abandon_raw_paste("the board acknowledged raw-paste data it had not received")
            return False
        return True

    def _abandon_raw_paste(self, why: str, recover: bool = True) -> None:
        self.use_raw_paste = False
        self.raw_paste_fallback = why
        self._buf = b""
        if not recover:
            return
        try:
            self.enter(soft_reset=False)
        except NotAnsweringError:
            raise NotAnsweringError(
                "the board misbehaved in raw-paste mode (%s) and stopped answering" % why,
                "reset or power-cycle the board and run again with --raw-paste off",
            )

    # -- helpers --------------------------------------------------------------------------
    def probe(self) -> dict:
        """Identify the interpreter (platform, version, unique id) in plain raw REPL."""
        saved = self.use_raw_paste
        self.use_raw_paste = False
        try:
            out = self.exec(
                "import sys\n"
                "try:\n import machine,binascii\n _u=binascii.hexlify(machine.unique_id())"
                ".decode()\nexcept Exception:\n _u=''\n"
                "print(sys.platform+'|'+'.'.join(str(x) for x in sys.implementation.version)"
                "+'|'+_u)\n"
            )
        finally:
            self.use_raw_paste = saved
        parts = (out.strip().splitlines() or [""])[-1].split("|")
        if len(parts) != 3:
            raise TargetError("unexpected probe answer from the board: %r" % out[-80:])
        self.platform = parts[0]
        if self.mode == "auto" and self.platform in RAW_PASTE_BROKEN:
            self.use_raw_paste = False
            self.raw_paste_fallback = "raw-paste is known to be broken on " + self.platform
        return {"platform": parts[0], "version": parts[1], "unique_id": parts[2]}
