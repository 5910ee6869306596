"""Exact-type schemas for untrusted documents (portable: CPython and MicroPython).

A schema is a tree of small checkers (``Str``, ``Int``, ``Num``, ``Obj``, ``List`` ...). ``check``
walks a value already decoded by ``strictjson`` (or ``tomllib``) and returns a normalised copy,
or raises FieldError naming the document and the exact field (``devices[2].interval``). Unknown
keys are refused by name, with the nearest known name when one is close.
"""

from firmware.core.errors import ProtocolError

INF = float("inf")
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-"  # noqa: S105 - a character set
PRINTABLE = "".join([chr(c) for c in range(32, 127)])


class FieldError(ProtocolError):
    """A document does not fit its schema; ``field`` is the dotted path of the culprit."""

    code = "field"

    def __init__(self, what: str, field: str, detail: str, hint: str = "") -> None:
        prefix = (what + ": ") if what else ""
        if field:
            prefix = prefix + "field '" + field + "': "
        super().__init__(prefix + detail, hint)
        self.what = what
        self.field = field
        self.detail = detail


class _Bad(Exception):
    """Raised inside the walk; check() turns it into a FieldError."""

    def __init__(self, path: str, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.path = path
        self.detail = detail
        self.hint = hint


def _join(path: str, name: str) -> str:
    return (path + "." + name) if path else name


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def distance(a: str, b: str) -> int:
    """Levenshtein distance (small strings: field names)."""
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        prev = cur
    return prev[len(b)]


def nearest(name: str, known: "list | tuple") -> str:
    """The known name closest to `name` when it is plausibly a typo, else ''."""
    best = ""
    best_d = 3
    for k in known:
        d = distance(str(name)[:64].lower(), k.lower())
        if d < best_d or (d == best_d and best == ""):
            if d <= max(1, len(k) // 3):
                best = k
                best_d = d
    return best


def unknown_key(path: str, key: object, known: "list | tuple") -> _Bad:
    """The error for a key the schema does not know (with a suggestion when one is close)."""
    near = nearest(str(key), known) if isinstance(key, str) else ""
    hint = ("did you mean '" + near + "'?") if near else ("known: " + ", ".join(sorted(known)))
    return _Bad(_join(path, str(key)[:64]), "unknown field", hint)


class Any_:
    """Any JSON value (its size and depth were bounded by the decoder)."""

    def walk(self, value: object, path: str) -> object:
        """Return the value as is."""
        return value


class Const:
    """Exactly this value (a format tag, a version)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def walk(self, value: object, path: str) -> object:
        """The value, when it is the constant."""
        if type(value) is not type(self.value) or value != self.value:
            raise _Bad(path, "must be " + repr(self.value) + ", got " + _short(value))
        return value


class Bool:
    """true or false."""

    def walk(self, value: object, path: str) -> object:
        """The boolean."""
        if not isinstance(value, bool):
            raise _Bad(path, "must be true or false, got " + _short(value))
        return value


class Str:
    """A string of bounded length, optionally from a character set or a list of choices."""

    def __init__(self, max_len: int = 256, min_len: int = 1, chars: "str | None" = None,
                 choices: "tuple | None" = None) -> None:
        self.max_len = max_len
        self.min_len = min_len
        self.chars = chars
        self.choices = choices

    def walk(self, value: object, path: str) -> object:
        """The string, when it fits."""
        if not isinstance(value, str):
            raise _Bad(path, "must be a string, got " + _short(value))
        if self.choices is not None:
            if value not in self.choices:
                raise _Bad(path, "must be one of " + ", ".join(self.choices) + ", got "
                           + _short(value))
            return value
        if len(value) < self.min_len:
            raise _Bad(path, "must not be empty" if self.min_len == 1 else
                       "must be at least %d characters" % self.min_len)
        if len(value) > self.max_len:
            raise _Bad(path, "is longer than %d characters" % self.max_len)
        if self.chars is not None:
            for ch in value:
                if ch not in self.chars:
                    raise _Bad(path, "contains the character %s, which is not allowed"
                               % _short(ch))
        return value


def Token(min_len: int = 1, max_len: int = 64) -> Str:  # noqa: N802 - reads like a type
    """A short identifier: letters, digits and ``._:@-``."""
    return Str(max_len, min_len, TOKEN_CHARS)


def Text(max_len: int = 256, min_len: int = 0) -> Str:  # noqa: N802
    """Printable ASCII text (no control characters)."""
    return Str(max_len, min_len, PRINTABLE)


class Int:
    """An integer (never a boolean) within [lo, hi]."""

    def __init__(self, lo: int = 0, hi: int = 2 ** 63 - 1) -> None:
        self.lo = lo
        self.hi = hi

    def walk(self, value: object, path: str) -> object:
        """The integer, when it is in range."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(path, "must be an integer, got " + _short(value))
        if value < self.lo or value > self.hi:
            raise _Bad(path, "must be between %d and %d" % (self.lo, self.hi))
        return value


class Num:
    """A finite number (int or float, never a boolean) within [lo, hi]; returned as float."""

    def __init__(self, lo: float, hi: float, lo_open: bool = False) -> None:
        self.lo = lo
        self.hi = hi
        self.lo_open = lo_open

    def walk(self, value: object, path: str) -> object:
        """The number as a float, when it is finite and in range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(path, "must be a number, got " + _short(value))
        if isinstance(value, int) and (value > 2 ** 53 or value < -(2 ** 53)):
            raise _Bad(path, "is out of range (%s to %s)" % (self.lo, self.hi))
        v = float(value)
        if v != v or v in (INF, -INF):
            raise _Bad(path, "must be a finite number (NaN and Infinity are refused)")
        if v < self.lo or v > self.hi or (self.lo_open and v == self.lo):
            raise _Bad(path, "must be %s %s and at most %s, got %s"
                       % ("above" if self.lo_open else "at least", self.lo, self.hi,
                          _short(value)))
        return v


class List:
    """A list of items of one schema, with bounded length."""

    def __init__(self, item: object, max_items: int = 64, min_items: int = 0) -> None:
        self.item = item
        self.max_items = max_items
        self.min_items = min_items

    def walk(self, value: object, path: str) -> object:
        """A checked copy of the list."""
        if not isinstance(value, list):
            raise _Bad(path, "must be a list, got " + _short(value))
        if len(value) > self.max_items:
            raise _Bad(path, "has more than %d items" % self.max_items)
        if len(value) < self.min_items:
            raise _Bad(path, "needs at least %d item(s)" % self.min_items)
        return [self.item.walk(v, "%s[%d]" % (path, i))  # type: ignore[attr-defined]
                for i, v in enumerate(value)]


class Map:
    """An object with free keys (of the key schema) mapping to values of one schema."""

    def __init__(self, key: object, value: object, max_items: int = 64) -> None:
        self.key = key
        self.value = value
        self.max_items = max_items

    def walk(self, value: object, path: str) -> object:
        """A checked copy of the mapping."""
        if not isinstance(value, dict):
            raise _Bad(path, "must be an object, got " + _short(value))
        if len(value) > self.max_items:
            raise _Bad(path, "has more than %d entries" % self.max_items)
        out = {}
        for k in value:
            sub = _join(path, str(k)[:64])
            self.key.walk(k, sub)  # type: ignore[attr-defined]
            out[k] = self.value.walk(value[k], sub)  # type: ignore[attr-defined]
        return out


class Opt:
    """Marks an object member as optional (absent is fine; present must fit)."""

    def __init__(self, inner: object, default: object = None) -> None:
        self.inner = inner
        self.default = default

    def walk(self, value: object, path: str) -> object:
        """The inner schema's result."""
        return self.inner.walk(value, path)  # type: ignore[attr-defined]


class Obj:
    """An object with named members; unknown keys are refused unless `extra` is true."""

    def __init__(self, fields: dict, extra: bool = False) -> None:
        self.fields = fields
        self.extra = extra

    def walk(self, value: object, path: str) -> object:
        """A checked copy with only the declared members (optional ones absent stay absent)."""
        if not isinstance(value, dict):
            raise _Bad(path, "must be an object, got " + _short(value))
        known = list(self.fields.keys())
        out = {}
        for k in value:
            if k not in self.fields:
                if not self.extra:
                    raise unknown_key(path, k, known)
                out[k] = value[k]
        for name in known:
            spec = self.fields[name]
            if name not in value:
                if isinstance(spec, Opt):
                    if spec.default is not None:
                        out[name] = spec.default
                    continue
                raise _Bad(_join(path, name), "is missing")
            out[name] = spec.walk(value[name], _join(path, name))
        return out


class OneOf:
    """The first of several schemas that fits (e.g. ``false`` or a table)."""

    def __init__(self, *options: object) -> None:
        self.options = options

    def walk(self, value: object, path: str) -> object:
        """The result of the first option that accepts the value."""
        first = None
        for opt in self.options:
            try:
                return opt.walk(value, path)  # type: ignore[attr-defined]
            except _Bad as exc:
                if first is None:
                    first = exc
        raise first  # type: ignore[misc]


class Check:
    """Wraps a schema with a predicate: ``pred(value)`` returns '' or the reason to refuse."""

    def __init__(self, inner: object, pred: object) -> None:
        self.inner = inner
        self.pred = pred

    def walk(self, value: object, path: str) -> object:
        """The inner result, when the predicate accepts it."""
        out = self.inner.walk(value, path)  # type: ignore[attr-defined]
        why = self.pred(out)  # type: ignore[operator]
        if why:
            raise _Bad(path, why)
        return out


def check(value: object, schema: object, what: str = "") -> object:
    """Walk `value` through `schema`; the normalised value or FieldError naming the field."""
    try:
        return schema.walk(value, "")  # type: ignore[attr-defined]
    except _Bad as exc:
        raise FieldError(what, exc.path, exc.detail, exc.hint)
