"""Portable tests of the strict JSON decoder (run under pytest and MicroPython)."""

from firmware.core import strictjson
from firmware.core.errors import ProtocolError
from tests.core.portable import raises


def test_plain_documents_parse() -> None:
    assert strictjson.loads(b'{"a": [1, 2.5, "x", true, null]}') == {"a": [1, 2.5, "x", True,
                                                                          None]}
    assert strictjson.loads_object('{"type": "hello"}', "hello") == {"type": "hello"}


def test_deep_nesting_refused_before_parsing() -> None:
    exc = raises(ProtocolError, strictjson.loads, b"[" * 1000, "frame")
    assert "frame" in str(exc) and "nested deeper" in str(exc)
    exc = raises(ProtocolError, strictjson.loads, "[" * 60000 + "]" * 60000, "hello")
    assert "nested deeper" in str(exc)
    # brackets inside strings do not count
    assert strictjson.loads('{"s": "' + "[" * 100 + '"}') == {"s": "[" * 100}


def test_nan_infinity_and_huge_numbers_refused() -> None:
    for text in ('{"i": NaN}', '{"i": Infinity}', '{"i": -Infinity}', '{"i": 1e400}',
                 '{"i": ' + "9" * 400 + "}", '{"i": 9223372036854775808}'):
        exc = raises(ProtocolError, strictjson.loads, text, "hello")
        assert "hello" in str(exc)
    assert strictjson.loads('{"i": 9223372036854775807}') == {"i": 9223372036854775807}


def test_size_encoding_and_shape_refused() -> None:
    raises(ProtocolError, strictjson.loads, b"[" + b"1," * 100 + b"1]", "x", 32, 50)
    raises(ProtocolError, strictjson.loads, b"\xff\xfe", "x")
    raises(ProtocolError, strictjson.loads, b"{bad", "x")
    raises(ProtocolError, strictjson.loads_object, b"[1]", "x")
    raises(ProtocolError, strictjson.loads, 7, "x")


def test_unterminated_string_of_escaped_quotes_is_linear() -> None:
    # The regular-expression pre-scan once restarted at every escaped quote of an unterminated
    # string: quadratic (a 32 KB LAN frame cost 45 s of CPU; 200 KB would take half an hour).
    exc = raises(ProtocolError, strictjson.loads, '"' + '\\"' * 100000, "frame")
    assert "frame" in str(exc)
    assert strictjson.loads('"' + '\\"' * 1000 + '"') == '"' * 1000


def test_duplicate_keys_are_refused_by_name() -> None:
    # Two parsers taking different copies of one key read two documents (parser differential).
    for text in ('{"role": "owner", "role": "installer"}', '{"a": {"k": 1, "k": 1}}',
                 '[{"x": 1}, {"y": 2, "\\u0079": 3}]', '{"s": "{\\"a\\":1}", "s" : 2}'):
        exc = raises(ProtocolError, strictjson.loads, text, "body")
        assert "body" in str(exc) and "appears twice" in str(exc), (text, str(exc))
    # the same key in sibling objects, or as a string value, is no duplicate
    doc = '[{"k": 1}, {"k": 2}, {"v": "k", "k": ":"}]'
    assert strictjson.loads(doc) == [{"k": 1}, {"k": 2}, {"v": "k", "k": ":"}]
    # the portable key scan (MicroPython's json has no pairs hook) agrees
    assert strictjson._duplicate_key('{"s": "{\\"a\\":1}", "s" : 2}') == "s"
    assert strictjson._duplicate_key('[{"y": 2, "\\u0079": 3}]') == "y"
    assert strictjson._duplicate_key(doc) is None
