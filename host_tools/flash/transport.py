"""Serial transport on pyserial (a real UART, USB CDC or a pseudo-terminal)."""

from __future__ import annotations

import errno
import os
import time

import serial

from host_tools.flash.errors import PortError


class SerialTransport:
    """A byte pipe to the board with an exclusive lock and deadline-based reads."""

    def __init__(self, port: str, baudrate: int = 115200) -> None:
        if not os.path.exists(port):
            raise PortError("serial port %s does not exist" % port,
                            "is the board plugged in? check `ls /dev/tty*` for its port")
        try:
            self.ser = serial.Serial(port, baudrate=baudrate, timeout=0.05, exclusive=True)
        except serial.SerialException as exc:
            text = str(exc)
            if "exclusively lock" in text or getattr(exc, "errno", None) in (errno.EBUSY,
                                                                             errno.EAGAIN):
                raise PortError("serial port %s is busy" % port,
                                "close the other program using it (mpremote, screen, minicom)")
            if getattr(exc, "errno", None) == errno.EACCES:
                raise PortError("no permission to open serial port %s" % port,
                                "add your user to the 'dialout' group")
            raise PortError("cannot open serial port %s: %s" % (port, text))
        self.port = port
        self.sent = 0

    def write(self, data: bytes) -> None:
        """Send bytes (all of them)."""
        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as exc:
            raise PortError("writing to %s failed: %s" % (self.port, exc),
                            "was the board unplugged?")
        self.sent += len(data)

    def read_some(self, timeout: float) -> bytes:
        """Whatever arrives within TIMEOUT seconds (possibly nothing)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                waiting = self.ser.in_waiting
                if timeout <= 0:
                    return self.ser.read(waiting) if waiting else b""
                data = self.ser.read(max(1, waiting))
            except (serial.SerialException, OSError) as exc:
                raise PortError("reading from %s failed: %s" % (self.port, exc),
                                "was the board unplugged?")
            if data or time.monotonic() >= deadline:
                return data

    def drain(self, quiet: float = 0.05, limit: float = 1.0) -> bytes:
        """Discard input until the line is quiet for QUIET seconds (boot noise, banners)."""
        got = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            chunk = self.read_some(quiet)
            if not chunk:
                break
            got += chunk
        return got

    def close(self) -> None:
        """Release the port."""
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass
