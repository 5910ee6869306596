"""Registry of self-test checks with stable IDs, each mapped to the requirement IDs it evidences.

A feature adds its checks in one module under ``firmware/gateway/selftest/checks/``::

    from firmware.gateway.selftest.registry import check, passed, failed

    @check("usb.default-deny", "USB default-deny blocks a fixture device",
           requirements=["SR2-H-5", "C10"], remediation="enable the USB guard")
    def usb_default_deny(ctx: CheckContext) -> Outcome:
        ...
        return failed("fixture mass-storage device was authorised")

Every module in that package is imported by
:func:`firmware.gateway.selftest.checks.load_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from firmware.core import selftest as model
from firmware.core.errors import ConfigError

if TYPE_CHECKING:
    from firmware.gateway.selftest.context import CheckContext


class Outcome:
    """What a check function returns: a verdict with its evidence (and a reason for n/a)."""

    def __init__(self, verdict: str, evidence: list[str], reason: str = "") -> None:
        if verdict not in model.VERDICTS:
            raise ConfigError(f"unknown verdict {verdict!r}")
        self.verdict = verdict
        self.evidence = evidence
        self.reason = reason


def passed(*evidence: str) -> Outcome:
    """The control was exercised and held."""
    return Outcome(model.PASS, list(evidence))


def failed(*evidence: str) -> Outcome:
    """The control is missing or was defeated."""
    return Outcome(model.FAIL, list(evidence))


def not_applicable(reason: str, *evidence: str) -> Outcome:
    """The requirement does not concern this installation (the reason is mandatory)."""
    return Outcome(model.NOT_APPLICABLE, list(evidence), reason)


def inconclusive(*evidence: str, decide: str = "") -> Outcome:
    """The check could not decide (its probe could not run); ``decide`` says what would make
    it decidable (shown as "to decide:" instead of a fix)."""
    return Outcome(model.INCONCLUSIVE, list(evidence), decide)


CheckFunc = Callable[["CheckContext"], Outcome]


class Check:
    """One registered check."""

    def __init__(self, check_id: str, title: str, requirements: list[str], remediation: str,
                 func: CheckFunc, description: str = "") -> None:
        self.id = check_id
        self.title = title
        self.requirements = list(requirements)
        self.remediation = remediation
        self.func = func
        self.description = description

    def applies(self, level: int) -> bool:
        """Whether any requirement it evidences applies at this service level."""
        return model.applies(self.requirements, level)

    def min_level(self) -> int:
        """Lowest service level at which the check applies."""
        return min(model.requirement_level(r) for r in self.requirements)


REGISTRY: dict[str, Check] = {}


def check(check_id: str, title: str, requirements: list[str],
          remediation: str) -> Callable[[CheckFunc], CheckFunc]:
    """Decorator registering a check; IDs are unique and stable, requirements from the catalog."""
    if not model.valid_check_id(check_id):
        raise ConfigError(f"invalid check ID {check_id!r}",
                          hint="dotted lower-case, e.g. feature.control")
    if not requirements:
        raise ConfigError(f"check {check_id} names no requirement")
    for r in requirements:
        model.requirement_level(r)

    def deco(func: CheckFunc) -> CheckFunc:
        existing = REGISTRY.get(check_id)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ConfigError(f"check ID {check_id} is registered twice")
        REGISTRY[check_id] = Check(check_id, title, requirements, remediation, func,
                                   (func.__doc__ or "").strip())
        return func

    return deco
