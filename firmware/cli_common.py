"""Shared plumbing for Mamori's command-line entry points (CPython only)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from firmware.core.errors import MamoriError

Handler = Callable[[argparse.Namespace], int]


def discover(package: ModuleType) -> list[ModuleType]:
    """Import every module of a commands package that defines register(subparsers)."""
    mods = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(package.__name__ + "." + info.name)
        if hasattr(mod, "register"):
            mods.append(mod)
    return mods


def build_parser(prog: str, description: str, package: ModuleType) -> argparse.ArgumentParser:
    """A parser whose sub-commands come from every module in the commands package."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in discover(package):
        mod.register(sub)
    return parser


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print a result as JSON (machine) or as text (person)."""
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, dispatch to the handler set with set_defaults(func=...), map errors to exit codes."""
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except MamoriError as exc:
        if getattr(args, "json", False):
            print(json.dumps(exc.to_dict(), indent=2))
        print("error: " + str(exc), file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
