"""Self-test engine: registry, level applicability, crash isolation, reports, signing, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.gateway.cli.main import main
from firmware.gateway.selftest import registry
from firmware.gateway.selftest.checks import load_checks
from firmware.gateway.selftest.registry import check, passed
from firmware.gateway.selftest.report import build_report, render_html, render_table
from firmware.gateway.selftest.runner import resolve_level, run_checks
from firmware.gateway.selftest.signing import sign_report, verify_report
from tests.conftest import require
from tests.selftest.helpers import TODAY, by_id, provisioned


@pytest.fixture
def temp_checks() -> Iterator[list[str]]:
    """Register throw-away checks and remove them afterwards."""
    added: list[str] = []
    yield added
    for cid in added:
        registry.REGISTRY.pop(cid, None)


def test_registry_ids_are_stable_and_mapped() -> None:
    checks = load_checks()
    assert {"board.profile", "board.wifi-security", "secrets.permissions",
            "secrets.plaintext-keys", "credentials.no-defaults", "tls.policy",
            "deviceinfo.disclosure", "deviceinfo.support-period"} <= set(checks)
    for c in checks.values():
        assert c.requirements and c.remediation and c.title, c.id


def test_registry_refuses_bad_declarations() -> None:
    with pytest.raises(ConfigError):
        check("Bad ID", "t", ["C1"], "r")
    with pytest.raises(ConfigError):
        check("x.y", "t", ["NOT-A-REQ"], "r")
    with pytest.raises(ConfigError):
        check("x.y", "t", [], "r")
    with pytest.raises(ConfigError):
        check("tls.policy", "t", ["C1"], "r")(lambda ctx: passed())


def test_level_decides_applicability(tmp_path: Path, temp_checks: list[str]) -> None:
    @check("zz.firewall", "firewall baseline", ["SR3-H-2"], "load the ruleset")
    def _fw(ctx: object) -> registry.Outcome:
        return registry.failed("ruleset flushed")

    temp_checks.append("zz.firewall")
    state = provisioned(tmp_path)
    r2 = by_id(run_checks(state, 2, "sim", "zz", today=TODAY))["zz.firewall"]
    assert r2.verdict == "not_applicable" and "★★★" in r2.reason and "★★" in r2.reason
    r3 = by_id(run_checks(state, 3, "sim", "zz", today=TODAY))["zz.firewall"]
    assert r3.verdict == "fail"


def test_crashing_check_is_inconclusive_and_isolated(tmp_path: Path,
                                                     temp_checks: list[str]) -> None:
    @check("zz.crash", "crashes", ["UK13"], "fix the check")
    def _crash(ctx: object) -> registry.Outcome:
        raise RuntimeError("probe exploded")

    @check("zz.scratch", "writes to its scratch copy", ["UK13"], "n/a")
    def _scratch(ctx: object) -> registry.Outcome:
        s = ctx.scratch()  # type: ignore[attr-defined]
        (s / "keys" / "device.kek").write_bytes(b"overwritten")
        (s / "admin.json").unlink()
        return passed(f"scratch at {s}")

    temp_checks += ["zz.crash", "zz.scratch"]
    state = provisioned(tmp_path)
    kek = (state / "keys" / "device.kek").read_bytes()
    res = by_id(run_checks(state, 3, "sim", "zz", today=TODAY))
    assert res["zz.crash"].verdict == "inconclusive"
    assert "RuntimeError: probe exploded" in res["zz.crash"].evidence[0]
    assert res["zz.scratch"].verdict == "pass"
    assert (state / "keys" / "device.kek").read_bytes() == kek
    assert (state / "admin.json").exists()
    scratch = Path(res["zz.scratch"].evidence[0].split(" at ")[1])
    assert not scratch.exists()  # removed after the check


def test_level_resolution(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    assert resolve_level(state, None) == 3  # recorded in deviceinfo.json
    assert resolve_level(state, 2) == 2
    (state / "deviceinfo.json").unlink()
    with pytest.raises(StateError):
        resolve_level(state, None)
    with pytest.raises(ConfigError):
        resolve_level(state, 4)
    with pytest.raises(StateError):
        run_checks(tmp_path / "absent", 3)
    with pytest.raises(ConfigError):
        run_checks(state, 3, only="no.such-check")


def _report(tmp_path: Path) -> dict:
    state = provisioned(tmp_path)
    (state / "leak.pem").write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    results = run_checks(state, 3, "sim", today=TODAY)
    return build_report(results, 3, state, "sim", {"manufacturer": "M", "model": "<gw>"})


def test_report_shapes(tmp_path: Path) -> None:
    rep = _report(tmp_path)
    assert rep["schema"] == "mamori-selftest/1" and rep["summary"]["exit_code"] == 2
    claims = {c["requirement"]: c for c in rep["claims"]}
    assert claims["SR3-H-6"]["verdict"] == "fail"
    assert "secrets.plaintext-keys" in claims["SR3-H-6"]["checks"]
    assert claims["PSTI-3"]["verdict"] == "pass"
    table = render_table(rep)
    assert "secrets.plaintext-keys" in table and "FAIL" in table and "fix:" in table
    page = render_html(rep)
    assert "<script" not in page and "http://" not in page and "https://fonts" not in page
    assert "&lt;gw&gt;" in page  # escaped
    assert "Claims (implementation conformance statement)" in page
    json.dumps(rep)


def test_signed_report_verifies_and_detects_tampering(tmp_path: Path) -> None:
    rep = _report(tmp_path)
    for key in (ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())):
        env = sign_report(rep, key)
        assert verify_report(json.loads(json.dumps(env)), key.public_key()) == rep
        forged = json.loads(json.dumps(env))
        forged["report"]["summary"]["verdict"] = "pass"
        with pytest.raises(IntegrityError):
            verify_report(forged, key.public_key())
        with pytest.raises(IntegrityError):
            verify_report(env, ed25519.Ed25519PrivateKey.generate().public_key())
        with pytest.raises(IntegrityError):
            verify_report({"report": rep}, key.public_key())


def test_cli_exit_codes_json_html_and_signature(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    require("netns")  # the firewall check loads the ruleset into a scratch namespace (root)
    state = provisioned(tmp_path)
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "sign.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    html_file = tmp_path / "report.html"
    out = tmp_path / "report.json"
    rc = main(["selftest", "--state-dir", str(state), "--json", "--html", str(html_file),
               "--sign-key", str(key_file), "--out", str(out)])
    env = json.loads(capsys.readouterr().out)
    assert rc == 0, env["report"]["results"]
    assert verify_report(env, key.public_key())["summary"]["verdict"] == "pass"
    assert json.loads(out.read_text(encoding="utf-8")) == env
    assert html_file.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    (state / "keys" / "device.kek").chmod(0o644)
    assert main(["selftest", "--state-dir", str(state), "--only", "secrets.permissions"]) == 2
    assert "secrets.permissions" in capsys.readouterr().out
    assert main(["selftest", "--state-dir", str(tmp_path / "absent")]) == 1
    assert main(["selftest", "--state-dir", str(state), "--only", "nope.nope"]) == 1
    assert main(["selftest", "--state-dir", str(state), "--level", "2", "--only",
                 "deviceinfo"]) == 0


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    require("chromium")
    page = tmp_path / "report.html"
    page.write_text(render_html(_report(tmp_path)), encoding="utf-8")
    shot = tmp_path / "out.png"
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,2000",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20000  # a rendered page with tables, not a blank image
