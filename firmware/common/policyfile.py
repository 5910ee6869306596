"""Strict reading of policy and configuration files (CPython).

A typo must never switch a control off: ``{"require_tickets": true}`` in
``policy/device-binding.json`` once meant "no ticket binding", silently. Here every key is
known, every value has its type, and a refusal names the file, the key and the nearest valid
name (``difflib.get_close_matches``). Parsing goes through ``firmware.core.strictjson``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.core import strictjson
from firmware.core.errors import ConfigError, ProtocolError

MAX_FILE = 256 * 1024


@dataclass(frozen=True)
class Field:
    """One key: its type(s), whether it must be present, its default, a value check."""

    kind: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    check: Callable[[Any], str] | None = None  # returns a complaint, "" when fine
    what: str = ""  # how a person names the type ("true or false", "a number of seconds")


def nearest(name: str, valid: Iterable[str]) -> str:
    """' (did you mean 'X'?)' for the closest valid name, else the list of valid names."""
    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return "did you mean '%s'? valid: %s" % (close[0], ", ".join(names))
    return "valid: " + (", ".join(names) or "none")


def _type_name(f: Field) -> str:
    if f.what:
        return f.what
    kinds = f.kind if isinstance(f.kind, tuple) else (f.kind,)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def check_keys(doc: Mapping[str, Any], fields: Mapping[str, Field], source: str,
               where: str = "") -> dict[str, Any]:
    """Validate one object against its fields; return it with defaults filled in."""
    prefix = where + "." if where else ""
    for key in doc:
        if key not in fields:
            raise ConfigError("unknown key '%s'" % key, source, prefix + key,
                              hint=nearest(key, fields))
    out: dict[str, Any] = {}
    for key, f in fields.items():
        if key not in doc:
            if f.required:
                raise ConfigError("is missing", source, prefix + key,
                                  hint="it must be %s" % _type_name(f))
            out[key] = f.default
            continue
        value = doc[key]
        kinds = f.kind if isinstance(f.kind, tuple) else (f.kind,)
        ok = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
        if not ok:
            raise ConfigError("must be %s, not %s" % (_type_name(f), _json_type(value)),
                              source, prefix + key)
        if f.check is not None:
            complaint = f.check(value)
            if complaint:
                raise ConfigError(complaint, source, prefix + key)
        out[key] = value
    return out


def parse(raw: bytes, fields: Mapping[str, Field], source: str) -> dict[str, Any]:
    """Strictly decode a JSON object and validate it."""
    try:
        doc = strictjson.loads_object(raw, source, max_bytes=MAX_FILE)
    except ProtocolError as exc:
        raise ConfigError(exc.message, source, hint="fix the file or remove it")
    return check_keys(doc, fields, source)


def load(path: Path, fields: Mapping[str, Field],
         missing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read and validate a policy file; `missing` is returned when it does not exist (None:
    a missing file is an error)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if missing is not None:
            return dict(missing)
        raise ConfigError("is missing", str(path))
    except OSError as exc:
        raise ConfigError("cannot be read: %s" % (exc.strerror or exc), str(path))
    return parse(raw, fields, str(path))


def unknown_files(directory: Path, known: Iterable[str]) -> list[ConfigError]:
    """A refusal for every file in `directory` that is not one of the `known` names (a
    misnamed policy file is a policy that silently does not apply)."""
    try:
        names = sorted(p.name for p in Path(directory).iterdir() if not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []
    known = list(known)
    return [ConfigError("unknown policy file (it is not applied)", str(Path(directory) / n),
                        hint=nearest(n, known)) for n in names if n not in known]
