"""The signed model allowlist's verdict on one device (portable).

Whether a maker/model may join over a transport and whether its firmware is new enough. The
list's signature is checked by whoever loaded it: the CPython gateway verifies the site CA's
ECDSA signature (``firmware.gateway.identity.admission``), the MicroPython small-site gateway the
HMAC of its device list (``firmware.micropython.devicelist``). Both call :func:`check_model`.
"""

from firmware.core import refusals as rc
from firmware.core.errors import PolicyError


def version_key(text: str) -> tuple:
    """A firmware version as numbers for comparison ("1.10.2" > "1.9"; non-digits ignored)."""
    out = []
    for part in str(text)[:64].split("."):
        # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses
        digits = "".join([c for c in part if "0" <= c <= "9"])[:18]
        out.append(int(digits) if digits else 0)
    return tuple(out)


def check_model(entries: "list | tuple", maker: str, model: str, transport: str,
                fw: str = "", level: int = 2) -> dict:
    """The allowlist entry, or PolicyError (model not on the list, or firmware too old)."""
    for e in entries:
        if e["maker"] == maker and e["model"] == model and transport in e["transports"]:
            if fw and version_key(fw) < version_key(str(e.get("min_firmware", "0"))):
                raise rc.coded(PolicyError(
                    "firmware %s of %s/%s is below the allowlist minimum %s"
                    % (fw[:32], maker, model, e["min_firmware"])), rc.FIRMWARE_TOO_OLD)
            return e
    raise PolicyError("model %s/%s over %s is not on the level-%d allowlist"
                      % (maker[:64], model[:64], transport, level))
