"""Kernel uevents: a netlink listener on a board, an injectable queue in tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

NETLINK_KOBJECT_UEVENT = 15
MAX_UEVENT = 8192


def parse_uevent(raw: bytes) -> dict[str, str] | None:
    """A kernel uevent ``action@devpath\\0KEY=VALUE\\0...`` as a dict; None if not one
    (udev's re-broadcasts start with ``libudev`` and are ignored)."""
    if len(raw) > MAX_UEVENT or raw.startswith(b"libudev"):
        return None
    parts = raw.split(b"\0")
    if not parts or b"@" not in parts[0]:
        return None
    env: dict[str, str] = {}
    for item in parts[1:]:
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    if "ACTION" not in env or "DEVPATH" not in env:
        return None
    return env


def encode_uevent(action: str, devpath: str, **env: str) -> bytes:
    """The kernel's wire form of a uevent (for tests and simulated boards)."""
    items = {"ACTION": action, "DEVPATH": devpath, "SUBSYSTEM": "usb", **env}
    body = b"\0".join(("%s=%s" % kv).encode() for kv in items.items())
    return ("%s@%s" % (action, devpath)).encode() + b"\0" + body + b"\0"


def usb_name(env: dict[str, str]) -> str:
    """The sysfs name (last DEVPATH component) of a USB uevent, '' for other subsystems."""
    if env.get("SUBSYSTEM") != "usb":
        return ""
    return env.get("DEVPATH", "").rstrip("/").rsplit("/", 1)[-1]


class QueueSource:
    """Uevents delivered by the caller (tests, the simulated board)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    def deliver(self, action: str, devpath: str, **env: str) -> None:
        """Inject one uevent as the kernel would send it."""
        parsed = parse_uevent(encode_uevent(action, devpath, **env))
        assert parsed is not None
        self.queue.put_nowait(parsed)

    async def events(self) -> AsyncIterator[dict[str, str]]:
        """Yield uevents as they are delivered."""
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        """Nothing to release."""


class NetlinkSource:
    """The kernel's uevent multicast group (needs Linux; a socket can be injected for tests)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock

    def open(self) -> None:
        """Subscribe to kernel uevents."""
        if self.sock is None:
            family: Any = getattr(socket, "AF_NETLINK", None)
            if family is None:
                raise OSError("netlink is not available on this platform")
            s = socket.socket(family, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
            s.bind((0, 1))
            self.sock = s
        self.sock.setblocking(False)

    async def events(self) -> AsyncIterator[dict[str, str]]:
        """Yield parsed kernel uevents."""
        self.open()
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        while True:
            raw = await loop.sock_recv(self.sock, MAX_UEVENT + 1)
            env = parse_uevent(raw)
            if env is not None:
                yield env

    def close(self) -> None:
        """Close the socket."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None
