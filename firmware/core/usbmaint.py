"""Maintenance windows: an operator's time-boxed exception to USB default deny (portable).

A window is data: ``{id, principal, port, classes, opened, expires, reason}``. It covers one
port (and whatever sits behind it) and/or interface classes; it closes by itself when the
injected clock passes ``expires``. The caller authenticates the operator; this module only
refuses windows that are unbounded, anonymous, or on ports the board keeps locked.
"""

from firmware.core.errors import ConfigError, PolicyError
from firmware.core.usbrules import _check_port, _is_hex, port_locked

CLASS_ALIASES = {
    "hid": ["03"],
    "storage": ["08"],
    "mass-storage": ["08"],
    "network": ["02", "0a", "e0"],
    "audio": ["01"],
    "video": ["0e"],
}
DEFAULT_SECONDS = 900
MAX_SECONDS = 4 * 3600
MAX_WINDOWS = 16


def normalise_classes(classes: "list | None") -> list:
    """Two-digit hex class codes from codes or aliases (hid, storage, network, ...)."""
    out = []
    for c in classes or []:
        c = c.strip().lower()
        codes = CLASS_ALIASES.get(c)
        if codes is None:
            if c.startswith("0x"):
                c = c[2:]
            if len(c) != 2 or not _is_hex(c):
                raise ConfigError("unknown interface class " + repr(c),
                                  hint="use a hex code such as 03 or one of "
                                  + ", ".join(sorted(CLASS_ALIASES)))
            codes = [c]
        for code in codes:
            if code not in out:
                out.append(code)
    return out


class MaintenanceWindows:
    """The set of maintenance windows, opened and expired against an injected clock."""

    def __init__(self, clock: object, locked_ports: "list | None" = None,
                 max_seconds: int = MAX_SECONDS) -> None:
        self.clock = clock
        self.locked = list(locked_ports or [])
        self.max_seconds = max_seconds
        self.windows: list = []
        self._seq = 0

    def open(self, principal: str, seconds: int = DEFAULT_SECONDS, port: str = "",
             classes: "list | None" = None, reason: str = "") -> dict:
        """Open a window for an authenticated principal; returns the window."""
        if not principal:
            raise PolicyError("a maintenance window needs an authenticated operator")
        if not isinstance(seconds, int) or seconds <= 0 or seconds > self.max_seconds:
            raise PolicyError("window length must be 1.." + str(self.max_seconds) + " seconds")
        codes = normalise_classes(classes)
        if not port and not codes:
            raise PolicyError("a window must name one port or one device class",
                              "e.g. --port 1-4 or --class hid")
        if port:
            if not _check_port(port) or port.startswith("usb"):
                raise ConfigError("bad port " + repr(port), hint='e.g. "1-4" or "1-1.2"')
            if port_locked(port, self.locked):
                raise PolicyError("port " + port + " is marked not needed by the board profile",
                                  "unneeded ports stay de-authorised, even in maintenance")
        self.expire()
        if len(self.windows) >= MAX_WINDOWS:
            raise PolicyError("too many open maintenance windows", "close one first")
        now = self.clock()  # type: ignore[operator]
        self._seq += 1
        wid = "mw-" + str(int(now)) + "-" + str(self._seq)
        w = {"id": wid, "principal": principal, "port": port, "classes": codes,
             "opened": now, "expires": now + seconds, "reason": reason}
        self.windows.append(w)
        return w

    def active(self) -> list:
        """Windows still open now."""
        now = self.clock()  # type: ignore[operator]
        return [w for w in self.windows if w["expires"] > now]

    def expire(self) -> list:
        """Drop and return the windows whose time is up."""
        now = self.clock()  # type: ignore[operator]
        gone = [w for w in self.windows if w["expires"] <= now]
        self.windows = [w for w in self.windows if w["expires"] > now]
        return gone

    def close(self, wid: str) -> dict:
        """Close one window early."""
        for w in self.windows:
            if w["id"] == wid:
                self.windows.remove(w)
                return w
        raise ConfigError("no open maintenance window " + repr(wid))

    def load(self, items: list) -> None:
        """Restore windows saved with to_list(), validating each one."""
        windows = []
        for w in items:
            if not isinstance(w, dict) or not w.get("id") or not w.get("principal"):
                raise ConfigError("malformed maintenance window entry")
            span = w.get("expires", 0) - w.get("opened", 0)
            if span <= 0 or span > self.max_seconds:
                raise ConfigError("maintenance window " + str(w.get("id")) + " is not time-boxed")
            if w.get("port") and port_locked(w["port"], self.locked):
                raise ConfigError("maintenance window " + w["id"] + " names a locked port")
            windows.append({"id": w["id"], "principal": w["principal"],
                            "port": w.get("port", ""),
                            "classes": normalise_classes(w.get("classes")),
                            "opened": w["opened"], "expires": w["expires"],
                            "reason": w.get("reason", "")})
        self.windows = windows
        self._seq = max([self._seq, len(windows)])

    def to_list(self) -> list:
        """Plain data for persistence."""
        return [dict(w) for w in self.windows]
