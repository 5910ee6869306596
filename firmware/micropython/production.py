"""Apply the production configuration (/state/production.json) where the port allows it.

Only calls this port is known to support are made, each behind feature detection; on any other
port nothing is changed and the report says so. Returns one line per control.
"""

import os
import sys

NOT_CONTROLLABLE = "not controllable on this port"


def _usb_device():
    try:
        import machine
    except ImportError:
        return None
    cls = getattr(machine, "USBDevice", None)
    return cls() if cls is not None else None


def _usb(usb_repl):
    """rp2/esp32-s2/s3/samd: keep at most the CDC REPL, never the mass-storage drive."""
    usbd = _usb_device()
    if usbd is None:
        return None
    none = getattr(usbd, "BUILTIN_NONE", None)
    cdc = getattr(usbd, "BUILTIN_CDC", None)
    if none is None:
        return None
    usbd.active(False)
    if usb_repl and cdc is not None:
        usbd.builtin_driver = cdc
        usbd.config(desc_dev=cdc.desc_dev, desc_cfg=cdc.desc_cfg)
        usbd.active(True)
        return ("enabled (CDC only, by configuration)", "disabled (builtin driver CDC only)")
    usbd.builtin_driver = none
    return ("disabled (machine.USBDevice builtin driver none)",
            "disabled (machine.USBDevice builtin driver none)")


def _dupterm(usb_repl):
    dupterm = getattr(os, "dupterm", None)
    if dupterm is None or usb_repl:
        return None
    if sys.platform not in ("rp2", "esp32", "esp8266"):
        return None
    dupterm(None)
    return "detached (os.dupterm(None))"


def apply(prod, platform=None):
    """Apply PROD (dict from production.json, None: strictest); return report lines."""
    platform = platform or sys.platform
    if not isinstance(prod, dict):
        prod = {"usb_repl": False}
    usb_repl = prod.get("usb_repl") is True
    lines = []
    try:
        usb = _usb(usb_repl)
    except Exception as exc:  # a port whose USB stack refuses: report, do not crash the boot
        usb = None
        lines.append("usb: error %r" % (exc,))
    if usb is not None:
        lines.append("usb repl: " + usb[0])
        lines.append("mass storage: " + usb[1])
    elif usb_repl:
        lines.append("usb repl: enabled (by configuration)")
        lines.append("mass storage: " + NOT_CONTROLLABLE + " (%s)" % platform)
    else:
        lines.append("usb repl: " + NOT_CONTROLLABLE + " (%s)" % platform)
        lines.append("mass storage: " + NOT_CONTROLLABLE + " (%s)" % platform)
    try:
        dup = _dupterm(usb_repl)
    except Exception as exc:
        dup = "error %r" % (exc,)
    lines.append("dupterm: " + (dup or "unchanged (%s)" % (
        "REPL allowed" if usb_repl else NOT_CONTROLLABLE + " (%s)" % platform)))
    if platform == "esp32" and not usb_repl:
        # The UART0 REPL of an ESP32 is wired in the firmware build, not switchable at run time.
        lines.append("uart repl: " + NOT_CONTROLLABLE + " at run time (build MicroPython "
                     "without the UART REPL)")
    return lines
