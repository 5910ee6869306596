"""Fuzz every route of the OpenAPI description (hypothesis): no 5xx, headers always present."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.gateway.admin import openapi
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.web import COOKIE, REQUIRED_HEADERS, Request
from tests.admin.helpers import OWNER_NEW, provision
from tests.core.portable import FakeClock

DOC = openapi.load()
OPS = [(path, method, op) for path, ops in sorted(DOC["paths"].items())
       for method, op in sorted(ops.items())]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly-valid values for a body schema (so handlers are reached), sometimes anything."""
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | JSON
    if kind == "string":
        base: st.SearchStrategy[Any] = st.text(min_size=schema.get("minLength", 0),
                                               max_size=schema.get("maxLength", 64) + 2)
        if "pattern" in schema:
            base = st.from_regex(schema["pattern"], fullmatch=True) | base
        return base
    if kind == "integer":
        return st.integers(schema.get("minimum", -10) - 2, schema.get("maximum", 10) + 2)
    if kind == "boolean":
        return st.booleans()
    if kind == "object":
        props = schema.get("properties", {})
        return st.fixed_dictionaries({k: from_schema(v) for k, v in props.items()
                                      if k in schema.get("required", [])},
                                     optional={k: from_schema(v) for k, v in props.items()
                                               if k not in schema.get("required", [])})
    return JSON


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> AdminApp:
    state = Path(tmp_path_factory.mktemp("fuzz")) / "state"
    provision(state)
    a = AdminApp(state, None, clock=FakeClock(1_700_000_000.0))
    a.create_account("tanaka", "owner", OWNER_NEW, "test")
    return a


def _session(app: AdminApp, who: str) -> tuple[str, str]:
    account, role = {"installer": ("installer", "installer"), "owner": ("tanaka", "owner")}[who]
    if app.db.account("tanaka") is None:
        app.create_account("tanaka", "owner", OWNER_NEW, "test")
    return app._new_session(account, role, "192.0.2.1", app.clock() + 3600, None)


@pytest.mark.parametrize("path,method,op", OPS, ids=["%s %s" % (m.upper(), p)
                                                      for p, m, _ in OPS])
def test_fuzz_route(app: AdminApp, path: str, method: str, op: dict[str, Any]) -> None:
    body_schema = (op.get("requestBody", {}).get("content", {})
                   .get("application/json", {}).get("schema"))
    body_st = (st.one_of(from_schema(body_schema).map(lambda v: json.dumps(v).encode()),
                         JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64))
               if body_schema is not None else st.just(b"") | st.binary(max_size=32))

    @settings(max_examples=30, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(param=st.text(max_size=70) | st.sampled_from(["device_name", "zigbee_channel",
                                                         "tanaka", "..", "%2e%2e"]),
           body=body_st, who=st.sampled_from(["none", "installer", "owner"]),
           csrf=st.booleans(), ctype=st.sampled_from(["application/json", "text/plain", ""]),
           query=st.text(max_size=20))
    def run(param: str, body: bytes, who: str, csrf: bool, ctype: str, query: str) -> None:
        target = path.replace("{name}", quote(param, safe=""))
        if query:
            target += "?" + quote(query)
        headers = {"Host": "gw.local:8443", "Content-Type": ctype}
        if who != "none":
            token, csrf_token = _session(app, who)
            headers["Cookie"] = "%s=%s" % (COOKIE, token)
            if csrf:
                headers["X-CSRF-Token"] = csrf_token
        resp = app.handle(Request(method.upper(), target, headers, body, "192.0.2.1"))
        assert resp.status < 500, (method, target, body[:80], resp.body[:200])
        for h in REQUIRED_HEADERS:
            assert h in resp.headers
        if who == "none" and op.get("security") != []:
            assert resp.status in (400, 401, 403), (method, target, resp.status)

    run()
