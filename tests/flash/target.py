"""A real MicroPython interpreter (WebAssembly port on Node.js) behind a pseudo-terminal.

The interpreter's REPL runs on one pty; the flashing client gets another pty (``port``); a pump
thread copies bytes between them and can play a board: count bytes, cut the line, inject boot
noise, answer raw-paste like a misbehaving board that recovers on Ctrl-C, or survive soft resets.
``exec_direct`` is an independent, minimal raw REPL used by tests to inspect the target.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MJS = ROOT / "tests/micropython/node_modules/@micropython/micropython-webassembly-pyscript" \
    / "micropython.mjs"


class WasmTarget:
    """One interpreter process (its filesystem lives in memory) and its client-side pty."""

    def __init__(self, heap: str = "2m", noise: bytes = b"", paste: str = "real",
                 survive_reset: bool = False) -> None:
        self.noise = noise
        self.paste = paste  # real | recoverable (answer R\x01, misbehave, recover on Ctrl-C)
        self.survive_reset = survive_reset
        self.to_target = 0  # bytes the client sent
        self.cut_after: int | None = None
        self.cut = threading.Event()
        self.resets = 0
        self.corrupt = False  # flip one base64 character of the next file chunk
        self._lock = threading.Lock()
        self._stop = False
        self._wedged = False
        self._line = b""  # what the client typed since the last raw REPL prompt
        self._raw = False
        self.m_node, s_node = os.openpty()
        tty.setraw(s_node)
        self.proc = subprocess.Popen(
            ["node", str(MJS), "-X", "heapsize=" + heap],
            stdin=s_node, stdout=s_node, stderr=s_node, start_new_session=True,
        )
        os.close(s_node)
        self.m_client, self.s_client = os.openpty()
        tty.setraw(self.s_client)
        self.port = os.ttyname(self.s_client)
        banner = self._read_node_until(b">>> ", 20.0)
        if not banner.endswith(b">>> "):
            self.close()
            raise RuntimeError("MicroPython target did not start: %r" % banner)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        if noise:
            os.write(self.m_client, noise)

    # -- independent inspection -----------------------------------------------------------
    def _read_node_until(self, marker: bytes, timeout: float) -> bytes:
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not buf.endswith(marker):
            r, _, _ = select.select([self.m_node], [], [], 0.05)
            if r:
                try:
                    buf += os.read(self.m_node, 4096)
                except OSError:
                    break
        return buf

    def exec_direct(self, code: str, timeout: float = 20.0) -> str:
        """Run CODE through our own minimal raw REPL, with the client pump paused."""
        with self._lock:
            os.write(self.m_node, b"\r\x03\x03")
            time.sleep(0.1)
            self._read_node_until(b"\x00", 0.2)
            os.write(self.m_node, b"\x01")
            got = self._read_node_until(b"raw REPL; CTRL-B to exit\r\n>", timeout)
            assert got.endswith(b">"), got
            os.write(self.m_node, code.encode() + b"\x04")
            got = self._read_node_until(b"\x04>", timeout)
            os.write(self.m_node, b"\x02")
            self._read_node_until(b">>> ", 2.0)
        assert got.startswith(b"OK"), got
        out, err, _ = got[2:].split(b"\x04")
        assert not err.strip(), err.decode()
        return out.decode()

    # -- the pump ---------------------------------------------------------------------------
    def _pump(self) -> None:
        while not self._stop:
            try:
                r, _, _ = select.select([self.m_node, self.m_client], [], [], 0.05)
            except (OSError, ValueError):
                return
            with self._lock:
                # Re-check under the lock: exec_direct may have consumed the bytes.
                r, _, _ = select.select([self.m_node, self.m_client], [], [], 0)
                if self.m_node in r:
                    try:
                        data = os.read(self.m_node, 65536)
                    except OSError:
                        return
                    os.write(self.m_client, data)
                if self.m_client in r:
                    try:
                        data = os.read(self.m_client, 65536)
                    except OSError:
                        continue
                    self._from_client(data)

    def _from_client(self, data: bytes) -> None:
        if self.cut.is_set():
            return
        if self.cut_after is not None and self.to_target + len(data) >= self.cut_after:
            data = data[: max(0, self.cut_after - self.to_target)]
            self.cut.set()
        self.to_target += len(data)
        k = data.find(b"_mw(b'")
        if self.corrupt and k >= 0 and k + 12 < len(data):
            c = data[k + 12:k + 13]
            data = data[:k + 12] + (b"B" if c == b"A" else b"A") + data[k + 13:]
            self.corrupt = False
        out = b""
        for c in data:
            b = bytes([c])
            if self._wedged:
                if b == b"\x03":  # a board that recovers from raw-paste trouble on Ctrl-C
                    self._wedged = False
                    self._line = b""
                    out += b
                continue
            if b == b"\x01":
                if self._raw and self._line == b"\x05A" and self.paste == "recoverable":
                    os.write(self.m_client, b"R\x01\x80\x00\x01\x04")
                    self._wedged = True
                    self._line = b""
                    continue
                self._raw = True
                self._line = b""
            elif b == b"\x02":
                self._raw = False
            elif b == b"\x03":
                self._line = b""
            elif b == b"\x04" and not self._raw:
                self.resets += 1  # Ctrl-D at the friendly REPL: a soft reset
                if self.survive_reset:
                    os.write(self.m_client, b"MPY: soft reboot\r\n>>> ")
                    continue
            elif b == b"\x04" and self._raw:
                if self._line == b"":
                    self.resets += 1
                if self._line == b"" and self.survive_reset:
                    # Play a board's soft reset instead of ending the interpreter.
                    os.write(self.m_client, b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit"
                                            b"\r\n>")
                    continue
                self._line = b""
            elif self._raw:
                self._line += b
            out += b
        if out:
            os.write(self.m_node, out)

    # -- lifecycle --------------------------------------------------------------------------
    def alive(self) -> bool:
        """Whether the interpreter process still runs."""
        return self.proc.poll() is None

    def close(self) -> None:
        """Stop the pump and the interpreter."""
        self._stop = True
        if getattr(self, "_thread", None) is not None:
            self._thread.join(timeout=2)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for fd in (self.m_node, self.m_client, self.s_client):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> WasmTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
