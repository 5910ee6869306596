"""USBGuard rule language, the subset Mamori supports: parse, check, format (portable).

    rule      ::= target attribute*
    target    ::= allow | block | reject
    attribute ::= NAME value | NAME [operator] { value value ... }
    NAME      ::= id | serial | name | via-port | with-interface | with-connect-type | label
    operator  ::= all-of | one-of | none-of | equals | equals-ordered | match-all

As in USBGuard: one rule per line, full-line ``#`` comments, first matching rule wins, a value
without braces is the set ``equals { value }``. Anything else (``hash``, ``parent-hash``,
conditions, unknown words) is refused with the file and line, never silently ignored.
"""

from firmware.core.errors import ConfigError

TARGETS = ("allow", "block", "reject")
OPERATORS = ("all-of", "one-of", "none-of", "equals", "equals-ordered", "match-all")
ATTRIBUTES = ("id", "serial", "name", "via-port", "with-interface", "with-connect-type", "label")
UNSUPPORTED = ("hash", "parent-hash", "if", "device")
# Attributes whose values are bare words (the others are double-quoted strings).
BARE = ("id", "with-interface")

MAX_LINE = 4096
MAX_RULES = 2000
MAX_VALUES = 64
_HEX = "0123456789abcdef"


class UsbRuleError(ConfigError):
    """A rule file line is malformed, unsupported, unknown or contradictory."""

    def __init__(self, message: str, source: str, line: int, hint: str = "") -> None:
        super().__init__(message, source + ":" + str(line), "", hint)
        self.file = source
        self.line = line


class Rule:
    """One parsed rule: target, attributes {name: (operator, [values])}, and where it came from."""

    def __init__(self, target: str, attrs: dict, line: int = 0, source: str = "") -> None:
        self.target = target
        self.attrs = attrs
        self.line = line
        self.source = source

    def key(self) -> str:
        """Canonical form of the match conditions (label ignored), to spot contradictions."""
        parts = []
        for name in sorted(self.attrs):
            if name == "label":
                continue
            op, values = self.attrs[name]
            vals = list(values) if op == "equals-ordered" else sorted(values)
            parts.append(name + " " + op + " " + " ".join(vals))
        return "|".join(parts)

    def where(self) -> str:
        """`file:line` (or `builtin`) for decisions and error messages."""
        if self.line:
            return (self.source or "<rules>") + ":" + str(self.line)
        return self.source or "builtin"

    def __str__(self) -> str:
        return format_rule(self)


def _tokens(text: str, source: str, lineno: int) -> list:
    """Split one line into ("word"|"str"|"{"|"}", text) tokens."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
        elif c in "{}":
            out.append((c, c))
            i += 1
        elif c == '"':
            i += 1
            buf = []
            closed = False
            while i < n:
                c = text[i]
                if c == '"':
                    closed = True
                    i += 1
                    break
                if c == "\\":
                    if i + 1 >= n:
                        break
                    nxt = text[i + 1]
                    if nxt in '"\\':
                        buf.append(nxt)
                        i += 2
                    elif nxt == "x" and i + 3 < n and _is_hex(text[i + 2:i + 4]):
                        buf.append(chr(int(text[i + 2:i + 4], 16)))
                        i += 4
                    else:
                        raise UsbRuleError("bad escape '\\" + nxt + "' in string", source, lineno,
                                           'use \\" \\\\ or \\xHH')
                else:
                    buf.append(c)
                    i += 1
            if not closed:
                raise UsbRuleError("unterminated string", source, lineno)
            out.append(("str", "".join(buf)))
        else:
            j = i
            while j < n and text[j] not in ' \t{}"':
                j += 1
            out.append(("word", text[i:j]))
            i = j
    return out


def _is_hex(s: str) -> bool:
    if not s:
        return False
    for c in s.lower():
        if c not in _HEX:
            return False
    return True


def _check_id(v: str) -> bool:
    parts = v.split(":")
    if len(parts) != 2:
        return False
    if parts[0] == "*":
        return parts[1] == "*"
    return len(parts[0]) == 4 and _is_hex(parts[0]) and (
        parts[1] == "*" or (len(parts[1]) == 4 and _is_hex(parts[1])))


def _check_iface(v: str) -> bool:
    parts = v.split(":")
    if len(parts) != 3:
        return False
    star = False
    for p in parts:
        if p == "*":
            star = True
        elif star or len(p) != 2 or not _is_hex(p):
            return False  # once a part is '*', the following parts must be '*' too
    return True


def _check_port(v: str) -> bool:
    if v.startswith("usb"):
        return v[3:].isdigit()
    if "-" not in v:
        return False
    bus, _, path = v.partition("-")
    if not bus.isdigit():
        return False
    for part in path.split("."):
        if not part.isdigit():
            return False
    return True


def _check_value(name: str, kind: str, value: str, source: str, lineno: int) -> str:
    if name in BARE:
        if kind != "word":
            raise UsbRuleError(name + " takes a bare value, not a quoted string", source, lineno)
        value = value.lower()
        if name == "id" and not _check_id(value):
            raise UsbRuleError("bad id " + repr(value), source, lineno,
                               "expected VVVV:PPPP in hex, VVVV:* or *:*")
        if name == "with-interface" and not _check_iface(value):
            raise UsbRuleError("bad interface type " + repr(value), source, lineno,
                               "expected CC:SS:PP in hex, wildcards as CC:SS:* CC:*:* *:*:*")
        return value
    if kind != "str":
        raise UsbRuleError(name + ' takes a double-quoted string, e.g. ' + name + ' "..."',
                           source, lineno)
    if name == "via-port" and not _check_port(value):
        raise UsbRuleError("bad port " + repr(value), source, lineno,
                           'expected a sysfs port such as "1-2" or "1-1.3"')
    return value


def parse_line(text: str, source: str = "<rules>", lineno: int = 1) -> "Rule | None":
    """Parse one line; None for blank lines and comments."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    if len(text) > MAX_LINE:
        raise UsbRuleError("line longer than " + str(MAX_LINE) + " characters", source, lineno)
    for c in stripped:
        if (ord(c) < 32 and c != "\t") or ord(c) == 127:
            raise UsbRuleError("control character in rule", source, lineno,
                               "write it as \\xHH inside a string")
    toks = _tokens(stripped, source, lineno)
    kind, target = toks[0]
    if kind != "word" or target not in TARGETS:
        raise UsbRuleError("unknown target " + repr(target), source, lineno,
                           "a rule starts with allow, block or reject")
    attrs = {}
    i = 1
    while i < len(toks):
        kind, name = toks[i]
        if kind != "word":
            raise UsbRuleError("expected an attribute name, got " + repr(name), source, lineno)
        if name in UNSUPPORTED:
            raise UsbRuleError("USBGuard attribute " + repr(name) + " is not supported by Mamori",
                               source, lineno, "remove it, or regenerate with `usb learn`")
        if name not in ATTRIBUTES:
            raise UsbRuleError("unknown attribute " + repr(name), source, lineno,
                               "supported: " + ", ".join(ATTRIBUTES))
        if name in attrs:
            raise UsbRuleError("attribute " + repr(name) + " given twice", source, lineno,
                               "use a set, e.g. " + name + " one-of { ... }")
        i += 1
        if i >= len(toks):
            raise UsbRuleError("attribute " + repr(name) + " has no value", source, lineno)
        op = ""
        if toks[i][0] == "word" and toks[i][1] in OPERATORS:
            op = toks[i][1]
            i += 1
            if i >= len(toks) or toks[i][0] != "{":
                raise UsbRuleError("operator " + op + " needs a { ... } set", source, lineno)
        if i < len(toks) and toks[i][0] == "{":
            i += 1
            values = []
            while i < len(toks) and toks[i][0] != "}":
                if toks[i][0] == "{":
                    raise UsbRuleError("nested { in a set", source, lineno)
                values.append(_check_value(name, toks[i][0], toks[i][1], source, lineno))
                i += 1
            if i >= len(toks):
                raise UsbRuleError("set for " + repr(name) + " is not closed with }", source,
                                   lineno)
            i += 1
            if not values:
                raise UsbRuleError("empty set for " + repr(name), source, lineno)
            if len(values) > MAX_VALUES:
                raise UsbRuleError("more than " + str(MAX_VALUES) + " values in a set", source,
                                   lineno)
            attrs[name] = (op or "equals", values)
        else:
            if toks[i][0] == "}":
                raise UsbRuleError("unexpected }", source, lineno)
            attrs[name] = ("equals", [_check_value(name, toks[i][0], toks[i][1], source, lineno)])
            i += 1
    if "label" in attrs and attrs["label"][0] != "equals":
        raise UsbRuleError("label takes one string", source, lineno)
    return Rule(target, attrs, lineno, source)


def parse_rules(text: str, source: str = "<rules>", locked_ports: "list | None" = None) -> list:
    """Parse a whole rule file; refuse malformed, unknown or contradictory rules.

    locked_ports: ports the board marks not needed; an allow rule naming one contradicts the
    board profile (the port stays de-authorised whatever the rules say).
    """
    rules: list = []
    seen: dict = {}
    for idx, line in enumerate(text.split("\n")):
        rule = parse_line(line.rstrip("\r"), source, idx + 1)
        if rule is None:
            continue
        if len(rules) >= MAX_RULES:
            raise UsbRuleError("more than " + str(MAX_RULES) + " rules", source, idx + 1)
        key = rule.key()
        if key in seen:
            first = seen[key]
            if first.target != rule.target:
                raise UsbRuleError(
                    "contradicts line " + str(first.line) + " (same devices, " + first.target
                    + " there, " + rule.target + " here)", source, idx + 1,
                    "keep one of the two rules")
        else:
            seen[key] = rule
        if locked_ports and rule.target == "allow" and "via-port" in rule.attrs:
            op, ports = rule.attrs["via-port"]
            for p in ports:
                if op != "none-of" and port_locked(p, locked_ports):
                    raise UsbRuleError(
                        "allows port " + p + " which the board profile marks not needed",
                        source, idx + 1, "unneeded ports stay de-authorised in every mode")
        rules.append(rule)
    return rules


def port_locked(port: str, locked_ports: list) -> bool:
    """True when port is one of locked_ports or sits behind one (a hub on that port)."""
    for lp in locked_ports:
        if port == lp or port.startswith(lp + "."):
            return True
    return False


def quote(value: str) -> str:
    """A USBGuard double-quoted string, escaping quotes, backslashes and control characters."""
    out = ['"']
    for c in value:
        o = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif o < 32 or o == 127:
            out.append("\\x" + _HEX[o >> 4] + _HEX[o & 15])
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def format_rule(rule: Rule) -> str:
    """The rule as a line of USBGuard syntax (parse_line(format_rule(r)) round-trips)."""
    parts = [rule.target]
    for name in ATTRIBUTES:
        if name not in rule.attrs:
            continue
        op, values = rule.attrs[name]
        vals = values if name in BARE else [quote(v) for v in values]
        if op == "equals" and len(vals) == 1:
            parts.append(name + " " + vals[0])
        elif op == "equals":
            parts.append(name + " { " + " ".join(vals) + " }")
        else:
            parts.append(name + " " + op + " { " + " ".join(vals) + " }")
    return " ".join(parts)
