"""Shared plumbing for Mamori's command-line entry points (CPython only).

A command package lists its verbs in ``VERBS`` (verb -> (module name, one-line help)). Only the
module of the verb being run is imported, so `mamori-gateway status` never loads the radio
stacks and `--help` imports no verb at all; a verb module imports what its handlers need.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, NoReturn

from firmware.core.errors import MamoriError

Handler = Callable[[argparse.Namespace], int]
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE


Verbs = Mapping[str, tuple[str, str]]


def _verbs(package: ModuleType) -> Verbs:
    verbs: Verbs = package.VERBS
    return verbs


class _VerbSubparsers:
    """The subparsers action as a verb module sees it: the verb's help comes from VERBS."""

    def __init__(self, sub: Any, verbs: Verbs) -> None:
        self._sub = sub
        self._verbs = verbs

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add the verb's parser, with the one-line help of the VERBS table."""
        if name in self._verbs:
            kwargs.setdefault("help", self._verbs[name][1])
            kwargs.setdefault("description", self._verbs[name][1])
        parser: argparse.ArgumentParser = self._sub.add_parser(name, **kwargs)
        return parser


def chosen_verb(argv: Sequence[str], verbs: Verbs) -> str | None:
    """The verb the command line asks for (its first non-option word), if it is known."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in verbs else None
    return None


def verb_module(package: ModuleType, verb: str) -> ModuleType:
    """Import the module that implements one verb."""
    return importlib.import_module(package.__name__ + "." + _verbs(package)[verb][0])


class Parser(argparse.ArgumentParser):
    """argparse, naming a mistyped option (argparse reports only what is then missing)."""

    argv: list[str] = []  # this process's command line, set by run()

    def error(self, message: str) -> NoReturn:
        """Exit 2 with the message, led by any option of this command that looks mistyped."""
        known = [o for o in self._option_string_actions if o.startswith("--")]
        typos = []
        for word in self.argv:
            name = word.split("=", 1)[0]
            if name.startswith("--") and name not in self._option_string_actions:
                close = difflib.get_close_matches(name, known, n=1)
                if close:
                    typos.append("%s (did you mean %s?)" % (name, close[0]))
        if typos:
            message = "unknown option %s; %s" % (", ".join(typos), message)
        super().error(message)


def build_parser(prog: str, description: str, package: ModuleType,
                 argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """A parser whose sub-commands come from the package's VERBS (only the one used, if any)."""
    parser = Parser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    verbs = _verbs(package)
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = chosen_verb(words, verbs)
    if chosen is not None:
        verb_module(package, chosen).register(_VerbSubparsers(sub, verbs))
    else:  # the overview (or a mistyped verb): names and help only, nothing imported
        for name, (_, helptext) in verbs.items():
            sub.add_parser(name, help=helptext)
    return parser


# C0 and C1 control characters and DEL, shown as \xNN: text from a device, a log or the
# platform must never move the cursor, retitle or clear the terminal, or start a new line.
_CONTROLS = {c: "\\x%02x" % c for c in [*range(0x20), *range(0x7f, 0xa0)]}


def plain(value: Any, missing: str = "-") -> str:
    """A value as an operator reads it in a table: no None, no True, no reprs, no controls."""
    if value is None or value == "" or value == [] or value == {}:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join("%s %s" % (plain(k), plain(v)) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple, set)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).translate(_CONTROLS)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print a result as JSON (machine) or as text (person)."""
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def _quiet_stdout() -> None:
    """After the reader of our output went away: discard what is still buffered."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, dispatch to the handler set with set_defaults(func=...), map errors to exit codes."""
    Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `mamori … | head`: the reader has all it wanted; no traceback, no second error.
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except MamoriError as exc:
        if getattr(args, "json", False):
            print(json.dumps(exc.to_dict(), indent=2))
        print("error: " + str(exc), file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except OSError as exc:
        # A file the user named is missing, unreadable or on a full or read-only disk.
        where = " (%s)" % exc.filename if getattr(exc, "filename", None) else ""
        msg = "%s%s" % (exc.strerror or type(exc).__name__, where)
        if getattr(args, "json", False):
            print(json.dumps({"error": "os", "message": msg, "hint": ""}, indent=2))
        print("error: " + msg, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
