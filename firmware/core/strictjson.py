"""Strict decoding of untrusted JSON (portable: CPython and MicroPython).

Every byte that comes from outside (LAN frames, WAN payloads, bundles, signed documents, log
checkpoints, files an operator hands in) goes through :func:`loads`: a size limit and a nesting
limit *before* parsing (so no parser recursion limit is ever reached), then no NaN or Infinity,
integers within 64 bits, finite floats, no key twice in one object (two parsers would
read two different documents). Every failure is a ProtocolError naming what was read.
"""

import json

from firmware.core.errors import ProtocolError

MAX_DEPTH = 32
MAX_BYTES = 1024 * 1024
MAX_INT = 2 ** 63 - 1
MAX_INT_DIGITS = 20  # a longer digit run is refused before int() ever sees it

try:
    _PARSE_ERRORS = (ValueError, RecursionError)
except NameError:  # MicroPython reports deep recursion as RuntimeError
    _PARSE_ERRORS = (ValueError, RuntimeError)  # type: ignore[assignment]


def _refuse(what: str, why: str) -> ProtocolError:
    return ProtocolError("%s is not acceptable JSON: %s" % (what or "input", why))


def _string_end(text: str, i: int) -> int:
    """Index just past the string whose opening quote is text[i] (len(text) if unterminated).

    Jumps from quote to quote (str.find), so the long strings of certificates and keys cost
    one step each; a quote is escaped when an odd run of backslashes precedes it.
    """
    j = i + 1
    while True:
        j = text.find('"', j)
        if j < 0:
            return len(text)
        k = j - 1
        while text[k] == "\\":
            k -= 1
        if (j - 1 - k) % 2 == 0:
            return j + 1
        j += 1


try:
    import re

    # The closing quote is optional: an unterminated string is consumed to the end in one match.
    # With it required, every escaped quote inside it became a new start: quadratic time (a
    # 32 KB frame of \" pairs cost 45 s of CPU).
    _STRING = re.compile(r'"[^"\\]*(\\.[^"\\]*)*"?')
    _BRACKET = re.compile(r"[\[\]{}]")
    _LONG_NUMBER = re.compile("[0-9]{%d}" % (MAX_INT_DIGITS + 3))
    _FAST = hasattr(_STRING, "sub") and hasattr(_BRACKET, "findall")
except (ImportError, ValueError, AttributeError):  # a MicroPython without these features
    _FAST = False


def _scan_fast(text: str, max_depth: int, what: str) -> None:
    """The same checks as _scan with the regular-expression engine doing the walking."""
    bare = _STRING.sub("", text)
    if _LONG_NUMBER.search(bare):
        raise _refuse(what, "a number has more than %d digits" % MAX_INT_DIGITS)
    depth = 0
    for ch in _BRACKET.findall(bare):
        if ch == "[" or ch == "{":
            depth += 1
            if depth > max_depth:
                raise _refuse(what, "nested deeper than %d levels" % max_depth)
        else:
            depth -= 1


def _scan(text: str, max_depth: int, what: str) -> None:
    """Refuse deep nesting and absurd number literals in one pass (strings skipped)."""
    depth = 0
    digits = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = _string_end(text, i)
            digits = 0
            continue
        if ch == "[" or ch == "{":
            depth += 1
            if depth > max_depth:
                raise _refuse(what, "nested deeper than %d levels" % max_depth)
            digits = 0
        elif ch == "]" or ch == "}":
            depth -= 1
            digits = 0
        elif "0" <= ch <= "9":
            digits += 1
            if digits > MAX_INT_DIGITS + 2:
                raise _refuse(what, "a number has more than %d digits" % MAX_INT_DIGITS)
        else:
            digits = 0
        i += 1


def _reject_constant(name: str) -> None:
    raise ValueError("%s is not allowed" % name)


def _twice(key: str) -> ValueError:
    return ValueError("key %r appears twice" % key[:40])


def _unique_pairs(pairs: list) -> dict:
    out = {}
    for k, v in pairs:
        if k in out:
            raise _twice(k)
        out[k] = v
    return out


try:
    _DECODER = json.JSONDecoder(parse_constant=_reject_constant,
                                object_pairs_hook=_unique_pairs)
except AttributeError:  # MicroPython's json has loads() only
    _DECODER = None  # type: ignore[assignment]  # (_check_values catches NaN there)


def _duplicate_key(text: str) -> "str | None":
    """The first key that appears twice in one object of a valid JSON text, else None (the
    portable check where the decoder has no pairs hook)."""
    stack: "list[set | None]" = []  # the keys of each open object; None for an array
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = _string_end(text, i)
            k = j
            while k < n and text[k] in " \t\r\n":
                k += 1
            if k < n and text[k] == ":" and stack and stack[-1] is not None:
                key = json.loads(text[i:j])
                if key in stack[-1]:
                    return key
                stack[-1].add(key)
            i = j
            continue
        if ch == "{":
            stack.append(set())
        elif ch == "[":
            stack.append(None)
        elif (ch == "]" or ch == "}") and stack:
            stack.pop()
        i += 1
    return None


def _check_values(value: object, what: str) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        elif isinstance(v, int):
            if v > MAX_INT or v < -MAX_INT - 1:
                raise _refuse(what, "an integer does not fit in 64 bits")
        elif isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise _refuse(what, "NaN and Infinity are not numbers here")


def loads(data: "bytes | str", what: str = "", max_depth: int = MAX_DEPTH,
          max_bytes: int = MAX_BYTES) -> object:
    """Parse untrusted JSON strictly; ProtocolError (naming `what`) for anything else."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > max_bytes:
            raise _refuse(what, "%d bytes, more than the %d allowed" % (len(data), max_bytes))
        try:
            text = bytes(data).decode()
        except UnicodeError:
            raise _refuse(what, "not UTF-8")
    elif isinstance(data, str):
        text = data
        if len(text) > max_bytes:
            raise _refuse(what, "%d characters, more than the %d allowed" % (len(text),
                                                                           max_bytes))
    else:
        raise _refuse(what, "not text")
    if _FAST:
        _scan_fast(text, max_depth, what)
    else:
        _scan(text, max_depth, what)
    try:
        value = _DECODER.decode(text) if _DECODER is not None else json.loads(text)
    except _PARSE_ERRORS as exc:
        raise _refuse(what, str(exc)[:120] or "malformed")
    if _DECODER is None:
        dup = _duplicate_key(text)
        if dup is not None:
            raise _refuse(what, str(_twice(dup)))
    _check_values(value, what)
    return value


def loads_object(data: "bytes | str", what: str = "", max_depth: int = MAX_DEPTH,
                 max_bytes: int = MAX_BYTES) -> dict:
    """Like loads(), and the top level must be a JSON object."""
    value = loads(data, what, max_depth, max_bytes)
    if not isinstance(value, dict):
        raise _refuse(what, "the top level must be an object")
    return value
