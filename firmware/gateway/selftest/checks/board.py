"""Board-profile checks: USB ports and console per profile (SR2-H-5), Wi-Fi security mode (C8)."""

from __future__ import annotations

import re

from firmware.core.errors import ConfigError
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import (
    Outcome,
    check,
    failed,
    inconclusive,
    not_applicable,
    passed,
)

_USB_ID = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")
GOOD_WIFI = ("wpa3-sae", "wpa2-wpa3")
ACCEPTED_WIFI = GOOD_WIFI + ("wpa2-psk",)


@check("board.profile", "Board profile valid; unneeded USB ports and console login disabled",
       requirements=["SR2-H-5", "UK6"],
       remediation="fix the board profile: mark every USB port needed=true/false, give each "
                   "needed port its allowed vendor:product, set console.login_in_production = "
                   "false and security.usb_repl_in_production = false")
def board_profile(ctx: CheckContext) -> Outcome:
    """The profile the gateway runs with is valid and declares the USB/console lockdown."""
    if not ctx.board_name:
        return inconclusive("no board recorded for this gateway",
                            decide="pass --board NAME or record it in deviceinfo.json")
    try:
        board = ctx.board()
    except ConfigError as exc:
        return failed(f"board profile invalid: {exc}")
    problems, evidence = [], []
    for port in board.usb_ports:
        if port.needed:
            allow = port.allow or ""
            if not _USB_ID.match(allow):
                problems.append(f"USB port {port.path}: needed but allow={allow!r} is not "
                                "a single vendor:product")
            else:
                evidence.append(f"USB port {port.path}: needed for "
                                f"{port.purpose or '?'}, only {allow} allowed")
        elif port.allow:
            problems.append(f"USB port {port.path}: not needed but allows {port.allow}")
        else:
            evidence.append(f"USB port {port.path}: not needed, disabled")
    if board.console.login_in_production:
        problems.append(f"serial console {board.console.serial} offers a login in "
                        "production")
    else:
        evidence.append(f"console {board.console.serial}: no login in production")
    if board.security.usb_repl_in_production:
        problems.append("USB REPL stays enabled in production")
    if problems:
        return failed(*problems)
    return passed(f"board {board.name} profile valid", *evidence)


@check("board.wifi-security", "Wi-Fi uses WPA3 (or WPA2) authentication",
       requirements=["C8"],
       remediation="set [wifi] security = \"wpa3-sae\" (or \"wpa2-wpa3\") in the board profile")
def wifi_security(ctx: CheckContext) -> Outcome:
    """The Wi-Fi security mode the board profile sets is WPA3 or WPA2."""
    if not ctx.board_name:
        return inconclusive("no board recorded for this gateway",
                            decide="pass --board NAME or record it in deviceinfo.json")
    try:
        board = ctx.board()
    except ConfigError as exc:
        return inconclusive(f"board profile unreadable: {exc}",
                            decide="fix the profile (`mamori boards show NAME` names the field)")
    wifi_ifaces = [i.name for i in board.network if i.kind == "wifi"]
    mode = board.wifi.security if board.wifi else None
    if not wifi_ifaces and mode is None:
        return not_applicable("the board has no Wi-Fi interface")
    where = ", ".join(wifi_ifaces) or "Wi-Fi"
    if mode is None:
        return failed(f"{where}: no Wi-Fi security mode declared")
    if mode not in ACCEPTED_WIFI:
        return failed(f"{where}: Wi-Fi security mode {mode!r} (open or legacy)")
    if mode in GOOD_WIFI:
        return passed(f"{where}: {mode}")
    return passed(f"{where}: {mode} (accepted by C8; WPA3 recommended)")
