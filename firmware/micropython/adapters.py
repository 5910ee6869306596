"""Small adapters that hand the portable core time, storage, randomness and the network."""

import os
import time

from firmware.core import hmacsha


def clock():
    """Wall-clock seconds (the board may not know the date: then it counts from boot)."""
    return time.time()


def monotonic():
    """Seconds since an arbitrary point, never going back."""
    ticks = getattr(time, "ticks_ms", None)
    if ticks is None:
        return time.time()
    return ticks() / 1000.0


def sleep(seconds):
    """Block for SECONDS."""
    ms = getattr(time, "sleep_ms", None)
    if ms is not None:
        ms(int(seconds * 1000))
    else:
        time.sleep(seconds)


class Storage:
    """Files under one directory (the board's state dir)."""

    def __init__(self, root):
        self.root = root.rstrip("/")
        try:
            os.mkdir(self.root)
        except OSError:
            pass

    def path(self, name):
        """Absolute path of NAME."""
        return self.root + "/" + name

    def read(self, name):
        """Bytes of NAME, or None when absent."""
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, name, data):
        """Replace NAME with DATA (temporary file then rename)."""
        tmp = self.path(name) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.rename(tmp, self.path(name))
        except OSError:
            os.remove(self.path(name))
            os.rename(tmp, self.path(name))

    def append(self, name, data):
        """Append DATA to NAME."""
        with open(self.path(name), "ab") as f:
            f.write(data)


def random_bytes(n):
    """N bytes from the port's CSPRNG, or None when the port has none."""
    urandom = getattr(os, "urandom", None)
    if urandom is None:
        return None
    return urandom(n)


def hkdf(secret, info, n=32):
    """HKDF-SHA-256 (RFC 5869) with an empty salt."""
    prk = hmacsha.mac(b"\0" * 32, secret)
    out, block, i = b"", b"", 1
    while len(out) < n:
        block = hmacsha.mac(prk, block + info + bytes([i]))
        out += block
        i += 1
    return out[:n]
