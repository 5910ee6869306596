"""systemd's service notification protocol (sd_notify): READY, WATCHDOG, STOPPING, STATUS.

Messages go as one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@``
is the abstract namespace). Without that variable (not started by systemd) nothing is sent.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends sd_notify messages when running under systemd (Type=notify)."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """True when there is a service manager to notify."""
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send KEY=VALUE lines as one message; False when not under systemd or it failed."""
        if not self.enabled:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)  # never stall the event loop on a busy service manager
            try:
                s.connect(self.address)
                s.sendall("\n".join(fields).encode())
            except OSError:
                return False
        self.sent += 1
        return True


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for ($WATCHDOG_USEC for this pid), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None
