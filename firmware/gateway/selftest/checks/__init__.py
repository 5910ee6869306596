"""One module per feature; each registers its checks with firmware.gateway.selftest.registry."""

from __future__ import annotations

import importlib
import pkgutil

from firmware.gateway.selftest.registry import REGISTRY, Check


def load_checks() -> dict[str, Check]:
    """Import every module of this package and return the registry, sorted by ID."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(__name__ + "." + info.name)
    return dict(sorted(REGISTRY.items()))
