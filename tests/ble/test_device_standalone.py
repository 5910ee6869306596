"""The device agent's BLE side stands alone: device makers embed it without the gateway."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BLE_DEVICE_MODULES = ("firmware.device.blerunner", "firmware.device.blehci",
                      "firmware.common.ble.channel", "firmware.common.ble.stream",
                      "firmware.common.ble.hci", "firmware.common.ble.gatt")


def test_device_ble_modules_load_no_gateway_code() -> None:
    code = ("import importlib, sys\n"
            "for m in %r: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('firmware.gateway')))"
            % (BLE_DEVICE_MODULES,))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def imported(path: Path) -> set[str]:
    """Every module a source file imports (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_shared_ble_code_never_reaches_into_the_gateway() -> None:
    files = sorted((ROOT / "firmware/common/ble").glob("*.py")) + [
        ROOT / "firmware/device/blerunner.py", ROOT / "firmware/device/blehci.py"]
    bad = {str(p.relative_to(ROOT)): sorted(m for m in imported(p)
                                            if m.startswith("firmware.gateway"))
           for p in files}
    assert {k: v for k, v in bad.items() if v} == {}
