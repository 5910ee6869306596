"""The OpenAPI 3 description of the admin API, built from the route table.

The package keeps the rendered file (``openapi.json``); a test keeps it equal to the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.gateway.admin.routes import ROUTES
from firmware.gateway.admin.web import COOKIE

FILE = Path(__file__).with_name("openapi.json")
_ERR = {"description": "error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"},
                                     "message": {"type": "string"}}}}}}


def build() -> dict[str, Any]:
    """The OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        op: dict[str, Any] = {
            "operationId": r.handler, "summary": r.summary,
            "responses": {"200": {"description": "done"}, "204": {"description": "done"},
                          **{c: _ERR for c in ("400", "401", "403", "404", "409", "413",
                                               "415", "429")}},
        }
        params = [{"name": p[1:-1], "in": "path", "required": True,
                   "schema": {"type": "string", "maxLength": 64}}
                  for p in r.parts if p.startswith("{")]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": r.body}}}
        if r.permission is None:
            op["security"] = []
        else:
            op["x-permission"] = r.permission
            if r.state_changing:
                op["security"] = [{"session": [], "csrf": []}]
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Mamori gateway local admin API", "version": "1"},
        "paths": paths,
        "security": [{"session": []}],
        "components": {"securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
            "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
        }},
    }


def render() -> str:
    """The document as kept in the package."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def load() -> dict[str, Any]:
    """The packaged document."""
    doc: dict[str, Any] = json.loads(FILE.read_text())
    return doc
