"""The dependency rules (import-linter contracts in pyproject.toml) hold, and they can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("firmware", "host_tools", "provisioning")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on a source tree with the project's contracts."""
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], cwd=tree, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def test_contracts_hold_on_the_repository() -> None:
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _copy(tmp: Path) -> Path:
    tree = tmp / "tree"
    tree.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", tree / "pyproject.toml")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


@pytest.mark.parametrize("where, line, contract", [
    ("firmware/gateway/runtime/planted.py", "import host_tools.cli.main", "Board code never"),
    ("firmware/device/planted.py", "import firmware.gateway.runtime.gateway", "Firmware:"),
    ("firmware/core/planted.py", "import firmware.common.fsutil", "Firmware:"),
    ("firmware/gateway/runtime/planted.py", "import firmware.gateway.wan.service", "Gateway:"),
    ("firmware/gateway/monitor/planted.py", "import firmware.gateway.firewall.service",
     "Gateway:"),
    ("provisioning/planted.py", "import firmware.gateway.identity.install", "Provisioning"),
    # service rooms never import each other (what one needs is handed in by composition)
    ("firmware/gateway/owner/planted.py", "import firmware.gateway.admin.db", "Gateway:"),
    ("firmware/gateway/admin/planted.py", "import firmware.gateway.owner.resale", "Gateway:"),
    ("firmware/gateway/admin/planted.py", "import firmware.gateway.update.agent", "Gateway:"),
    ("firmware/gateway/update/planted.py", "import firmware.gateway.owner.resale", "Gateway:"),
    ("firmware/gateway/owner/planted.py", "import firmware.gateway.update.blockslot",
     "Gateway:"),
])
def test_a_planted_upward_import_breaks_a_contract(tmp_path: Path, where: str, line: str,
                                                   contract: str) -> None:
    tree = _copy(tmp_path)
    (tree / where).write_text('"""Planted by the test."""\n\n' + line + "\n")
    proc = lint_imports(tree)
    assert proc.returncode != 0
    broken = proc.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and Path(where).stem in broken, proc.stdout[-3000:]


def test_the_gateway_contracts_ignore_no_import() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]
    by_id = {c["id"]: c for c in contracts}
    for cid in ("gateway-layers", "no-cycles"):
        assert by_id[cid].get("ignore_imports", []) == [], cid
    proc = lint_imports(ROOT)
    assert "ignored" not in proc.stdout, proc.stdout[-3000:]
