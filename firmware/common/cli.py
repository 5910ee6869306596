"""Shared plumbing for Mamori's command-line entry points (CPython only).

A command package lists its verbs in ``VERBS`` (verb -> module name). Only the module of the
verb being run is imported, so `mamori-gateway status` never loads the radio stacks; each verb
module keeps its top-level imports light and imports what its handler needs inside it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from firmware.core.errors import MamoriError

Handler = Callable[[argparse.Namespace], int]
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE


def _verbs(package: ModuleType) -> Mapping[str, str]:
    verbs: Mapping[str, str] = package.VERBS
    return verbs


def chosen_verb(argv: Sequence[str], verbs: Mapping[str, str]) -> str | None:
    """The verb the command line asks for (its first non-option word), if it is known."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in verbs else None
    return None


def verb_modules(package: ModuleType, only: str | None = None) -> list[ModuleType]:
    """Import the module of one verb (or of every verb, for the overview and errors)."""
    verbs = _verbs(package)
    names = [only] if only is not None else sorted(verbs)
    return [importlib.import_module(package.__name__ + "." + verbs[n]) for n in names]


def build_parser(prog: str, description: str, package: ModuleType,
                 argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """A parser whose sub-commands come from the package's VERBS (only the one used, if any)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    words = list(sys.argv[1:] if argv is None else argv)
    for mod in verb_modules(package, chosen_verb(words, _verbs(package))):
        mod.register(sub)
    return parser


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
