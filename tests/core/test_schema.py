"""Portable tests of the exact-type schemas: hello, ids, envelopes, log documents."""

from firmware.core import schema
from firmware.core.accesslog import docs
from firmware.core.command_auth import CommandRefused, check_expires
from firmware.core.errors import MamoriError, ProtocolError
from firmware.core.hello import DEFAULT_INTERVAL, parse_hello
from firmware.core.ids import valid_id
from tests.core.portable import raises

GOOD = {"type": "hello", "id": "lock-1", "transport": "ip", "kind": "lock", "maker": "Acme",
        "model": "Lock1", "fw": "1.2.0", "interval": 2}


def _with(**kw: object) -> dict:
    d = dict(GOOD)
    for k in kw:
        d[k] = kw[k]
    return d


def test_ids_follow_the_provisioning_syntax() -> None:
    for good in ("a", "lock-1", "gw1.home", "A_b-9", "x" * 63):
        assert valid_id(good), good
    for bad in ("", "..", "../x", "a/b", ".hidden", "-x", "_x", "x" * 64, "a\n", "a b",
                "é", None, 7, "a\\b"):
        assert not valid_id(bad), bad


def test_hello_fields_are_exact() -> None:
    h = parse_hello(GOOD)
    assert h["interval"] == 2.0 and isinstance(h["interval"], float)
    assert parse_hello({"type": "hello", "id": "x"})["interval"] == DEFAULT_INTERVAL
    cases = [(_with(interval=float("nan")), "interval"), (_with(interval=float("inf")),
                                                          "interval"),
             (_with(interval=-1), "interval"), (_with(interval=0), "interval"),
             (_with(interval=10 ** 30), "interval"), (_with(interval="5"), "interval"),
             (_with(interval=True), "interval"), (_with(interval=[1]), "interval"),
             (_with(id="../x"), "id"), (_with(id="a/b"), "id"), (_with(id=5), "id"),
             (_with(fw="1.\u00b2"), "fw"), (_with(fw="x" * 40), "fw"),
             (_with(transport="carrier-pigeon"), "transport"), (_with(maker=["A"]), "maker")]
    for msg, field in cases:
        exc = raises(schema.FieldError, parse_hello, msg)
        assert exc.field == field, (field, str(exc))
        assert isinstance(exc, ProtocolError) and isinstance(exc, MamoriError)
    exc = raises(schema.FieldError, parse_hello, _with(intervall=5))
    assert exc.field == "intervall" and "did you mean 'interval'" in str(exc)


def test_schema_walk_names_nested_fields() -> None:
    s = schema.Obj({"devices": schema.List(schema.Obj({"n": schema.Int(0, 9)}), 4)})
    exc = raises(schema.FieldError, schema.check, {"devices": [{"n": 1}, {"n": 10}]}, s, "doc")
    assert exc.field == "devices[1].n" and str(exc).startswith("doc: field 'devices[1].n'")
    raises(schema.FieldError, schema.check, {"devices": [{}] * 5}, s, "doc")
    assert schema.check({"devices": []}, s) == {"devices": []}
    opt = schema.Obj({"a": schema.Opt(schema.Bool()), "b": schema.OneOf(schema.Const(False),
                                                                        schema.Str(8))})
    assert schema.check({"b": False}, opt) == {"b": False}
    assert schema.check({"b": "x", "a": True}, opt) == {"a": True, "b": "x"}
    raises(schema.FieldError, schema.check, {"b": True}, opt)
    assert schema.nearest("secruity", ["security", "serial"]) == "security"
    assert schema.nearest("zzzzzz", ["security"]) == ""


def test_expiry_is_bounded() -> None:
    assert check_expires(1760000000) == 1760000000
    for bad in (0, -1, 10 ** 400, 2 ** 63, 1.5, "1", True, None):
        exc = raises(CommandRefused, check_expires, bad)
        assert exc.reason == "malformed"


def test_checkpoint_and_header_shapes() -> None:
    cp = ('{"t":"checkpoint","log":"abc","epoch":1,"seq":5,"head":"' + "0" * 64 + '","seal":"'
          + "1" * 64 + '","sig":"' + "2" * 128 + '","ts":1.5,"base":{"seg":0}}')
    assert docs.parse_checkpoint(cp)["epoch"] == 1
    for bad, field in ((cp.replace('"seg":0', '"seg":"0"'), "base.seg"),
                       (cp.replace('"log":"abc"', '"log":"\\ud800"'), "log"),
                       (cp.replace('"epoch":1', '"epoch":-1'), "epoch"),
                       (cp.replace('"ts":1.5', '"ts":1.5,"extra":1'), "extra")):
        exc = raises(schema.FieldError, docs.parse_checkpoint, bad)
        assert exc.field == field, (field, str(exc))
    exc = raises(ProtocolError, docs.parse_checkpoint,
                 cp.replace('"ts":1.5', '"ts":' + "[" * 50 + "]" * 50))
    assert "nested deeper" in str(exc)
