"""A small validator for the JSON request bodies the OpenAPI description declares (UK13)."""

from __future__ import annotations

import re
from typing import Any

from firmware.core.errors import ConfigError
from firmware.core.schema import nearest

_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "boolean": (bool,),
                                       "object": (dict,)}


def check(schema: dict[str, Any], value: Any, where: str = "body") -> None:
    """Raise ConfigError unless value fits the schema (types, bounds, patterns, extra keys)."""
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind])
        if kind == "integer" and isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError("must be of type %s" % kind, field=where)
    if "enum" in schema and value not in schema["enum"]:
        raise ConfigError("is not an allowed value", field=where)
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", 1 << 30):
            raise ConfigError("is too long", field=where)
        if len(value) < schema.get("minLength", 0):
            raise ConfigError("is too short", field=where)
        if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
            raise ConfigError("has an invalid format", field=where)
    if isinstance(value, int) and not isinstance(value, bool) and (
            value < schema.get("minimum", value) or value > schema.get("maximum", value)):
        raise ConfigError("is out of range", field=where)
    if kind == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise ConfigError("is required", field=name)
        for name, item in value.items():
            if name not in props:
                if schema.get("additionalProperties", True) is False:
                    near = nearest(str(name), list(props))
                    raise ConfigError("is not a known field", field=str(name)[:64],
                                      hint=("did you mean '%s'?" % near) if near else
                                      "known: " + ", ".join(sorted(props)))
                continue
            check(props[name], item, name)
