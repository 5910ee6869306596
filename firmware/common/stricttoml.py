"""Strict decoding of TOML files an operator hands in (board profiles, registers) (CPython).

The TOML twin of ``firmware.core.strictjson``: a size limit and a nesting limit *before*
``tomllib`` runs (so its recursion and its 4,300-digit integer limit are never reached), then
integers within 64 bits and finite floats (TOML allows ``nan`` and ``inf``; we do not). Every
failure is a ConfigError naming the file.
"""

from __future__ import annotations

import math
import tomllib
from typing import Any

from firmware.core.errors import ConfigError

MAX_BYTES = 256 * 1024
MAX_DEPTH = 16
MAX_DIGITS = 40  # digits and underscores in one number literal
MAX_INT = 2 ** 63 - 1


def _skip_string(text: str, i: int) -> int:
    """Index just after the string starting at text[i] (a quote); len(text) if unterminated."""
    q = text[i]
    n = len(text)
    if text.startswith(q * 3, i):
        end = i + 3
        while end < n:
            if q == '"' and text[end] == "\\":
                end += 2
                continue
            if text.startswith(q * 3, end):
                end += 3
                while end < n and text[end] == q:  # up to two quotes may end the content
                    end += 1
                return end
            end += 1
        return n
    end = i + 1
    while end < n and text[end] != "\n":
        if q == '"' and text[end] == "\\":
            end += 2
            continue
        if text[end] == q:
            return end + 1
        end += 1
    return end


def _scan(text: str, source: str, max_depth: int) -> None:
    """Refuse deep nesting and absurd number literals (strings and comments skipped)."""
    depth = 0
    run = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            i = _skip_string(text, i)
            run = 0
            continue
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            run = 0
            continue
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                raise ConfigError("is nested deeper than %d levels" % max_depth, source)
        elif ch in "]}":
            depth = max(0, depth - 1)
        if "0" <= ch <= "9" or ch == "_":
            run += 1
            if run > MAX_DIGITS:
                raise ConfigError("has a number of more than %d digits" % MAX_DIGITS, source)
        else:
            run = 0
        i += 1


def _check_values(value: Any, source: str) -> None:
    stack = [(value, "")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, (where + "." if where else "") + str(k)) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, "%s[%d]" % (where, i)) for i, x in enumerate(v))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int) and not -MAX_INT - 1 <= v <= MAX_INT:
            raise ConfigError("does not fit in 64 bits", source, where)
        elif isinstance(v, float) and not math.isfinite(v):
            raise ConfigError("must be a finite number (nan and inf are refused)", source, where)


def loads(raw: bytes, source: str, max_bytes: int = MAX_BYTES,
          max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Parse an untrusted TOML document strictly; ConfigError naming `source` otherwise."""
    if len(raw) > max_bytes:
        raise ConfigError("is %d bytes, more than the %d allowed" % (len(raw), max_bytes),
                          source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", source)
    _scan(text, source, max_depth)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("is not valid TOML: " + str(exc), source)
    except (ValueError, RecursionError) as exc:  # backstop: the scan should have refused it
        raise ConfigError("is not acceptable TOML: %s" % str(exc)[:120], source)
    _check_values(data, source)
    return data


def load_file(path: Any, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Read and parse a TOML file (ConfigError when it cannot be read or parsed)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError("cannot be read: %s" % (exc.strerror or exc), str(path))
    return loads(raw, str(path), max_bytes)
