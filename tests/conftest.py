"""Shared test plumbing: real components are required in CI and skipped visibly elsewhere;
tests marked ``serial`` run one at a time under pytest-xdist; the traceability gap summary."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.components import COMPONENTS, PYTHON_TOOLS, which

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _python_tool(name: str) -> bool:
    return (Path(sys.executable).parent / name).is_file() or shutil.which(name) is not None


_cache: dict[str, str] = {}


def require(component: str) -> None:
    """Skip (with the reason) when a real component is missing; in CI a missing one fails.

    Components are declared once, in tests/components.py (package and presence check).
    """
    if component not in _cache:
        if component in PYTHON_TOOLS:
            _cache[component] = "" if _python_tool(component) else "not installed (make deps)"
        else:
            _cache[component] = COMPONENTS[component].missing()
    if not _cache[component]:
        return
    msg = "real component %r is not available on this machine: %s" % (component,
                                                                      _cache[component])
    if IN_CI:
        pytest.fail(msg + " (CI=true: a missing component is a failure, not a skip)")
    # Reported at the test that needs it (not at this line), so the skip list names each test.
    raise pytest.skip.Exception(msg, _use_item_location=True)


def require_image_tools() -> None:
    """What `mamori flash image` needs to lay out a Raspberry Pi image (FAT boot, ext4 slots)."""
    for c in ("vfat", "mtools", "ext4"):
        require(c)


def mosquitto_path() -> str:
    """Path of the mosquitto binary (Debian installs it in /usr/sbin)."""
    return which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture
def needs() -> Callable[..., None]:
    """Fixture form of require(): ``needs("mosquitto", "netns")``."""

    def _needs(*components: str) -> None:
        for c in components:
            require(c)

    return _needs


# Under `pytest -n N --dist loadgroup` every test marked `serial` lands in this one xdist group:
# one worker runs them one after the other (the other workers go on with the rest).
SERIAL_GROUP = "serial"


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook turns groups into node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Map ``@pytest.mark.serial(reason)`` to one xdist group."""
    for item in items:
        mark = item.get_closest_marker("serial")
        if mark is None:
            continue
        if not (mark.args and str(mark.args[0]).strip()):
            raise pytest.UsageError("%s: @pytest.mark.serial needs a reason (what it shares)"
                                    % item.nodeid)
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(SERIAL_GROUP))


_serial_workers: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """In the xdist controller: note which worker ran each `serial` test."""
    node = getattr(report, "node", None)  # set by xdist on reports from workers
    if node is not None and report.when == "setup" and "serial" in report.keywords:
        _serial_workers.add(str(node.gateway.id))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run when `serial` tests were spread over workers (they may have overlapped)."""
    if len(_serial_workers) > 1:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _ran_traceability(terminalreporter: Any) -> bool:
    return any(str(getattr(r, "nodeid", "")).startswith("tests/traceability/")
               for reports in terminalreporter.stats.values() for r in reports)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say when `serial` tests were spread over workers; list every requirement declared as a
    traceability gap, so no gap passes silently (once per run: in the xdist controller, not in
    the workers; only when the traceability tests ran)."""
    if len(_serial_workers) > 1:
        terminalreporter.section("serial tests ran on several workers", red=True)
        terminalreporter.write_line(
            "tests marked `serial` ran on %s, so they may have overlapped: run with "
            "`--dist loadgroup` (as `make test` does) and a pytest that pytest-xdist's "
            "loadgroup supports (pyproject.toml pins it)" % ", ".join(sorted(_serial_workers)))
    if hasattr(config, "workerinput") or not _ran_traceability(terminalreporter):
        return
    from host_tools import trace

    try:
        gaps = trace.gaps(trace.load_matrix())
    except Exception as exc:  # a broken matrix is reported by the tests themselves
        terminalreporter.write_line("traceability: matrix unreadable: %s" % exc)
        return
    terminalreporter.section("traceability gaps (explicit allowlist)")
    for e in gaps:
        terminalreporter.write_line("%-9s missing %-14s %s" % (e.id, ",".join(e.gaps), e.reason))
    terminalreporter.write_line("%d gap(s); see tests/traceability/requirements.toml" % len(gaps))
