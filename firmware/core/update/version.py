"""Firmware version strings: dotted numbers ("1.4.2"), compared numerically (portable)."""

from firmware.core.errors import PolicyError

MAX_PARTS = 4


def parse_version(text: str) -> tuple:
    """Parse "MAJOR.MINOR[.PATCH[.BUILD]]" into a tuple of ints; refuse anything else."""
    if not isinstance(text, str) or not text or len(text) > 40:
        raise PolicyError("invalid firmware version %r" % (text,), "use dotted numbers like 1.4.2")
    parts = text.split(".")
    if len(parts) < 2 or len(parts) > MAX_PARTS:
        raise PolicyError("invalid firmware version %r" % (text,), "use 2 to 4 dotted numbers")
    out = []
    for p in parts:
        if not p or not p.isdigit() or (len(p) > 1 and p[0] == "0"):
            raise PolicyError("invalid firmware version %r" % (text,),
                              "each part is a number without leading zeros")
        out.append(int(p))
    while len(out) < MAX_PARTS:
        out.append(0)
    return tuple(out)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version a is older than, equal to or newer than b."""
    pa = parse_version(a)
    pb = parse_version(b)
    if pa < pb:
        return -1
    if pa > pb:
        return 1
    return 0


def newest(a: str, b: str) -> str:
    """The newer of two versions (a when equal); an empty string counts as "none"."""
    if not a:
        return b
    if not b:
        return a
    return b if compare(b, a) > 0 else a
