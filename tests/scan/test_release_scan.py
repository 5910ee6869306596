"""`mamori scan` end to end against staging gateways in test-made namespaces (real nmap/sslscan)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from host_tools.cli import scan as scan_cli
from host_tools.cli.main import main
from host_tools.scan.report import passed, report_hash
from tests.conftest import require
from tests.scan import fixtures

EXTRA_PORT = 2323
TLS10_PORT = 4433
LISTEN = Path(__file__).with_name("listen.py")
GW_LAN6, GW_WAN6 = "fd97:2::1", "fd97:1::1"


def _need() -> None:
    for c in ("netns", "nft", "nmap", "sslscan", "openssl"):
        require(c)


def _scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["scan", "--board", "rpi4", "--json", *args])
    out = capsys.readouterr()
    # A minute-long scan says what it is doing as it goes (it was silent for ~46 s).
    assert "scan: sweeping every TCP and UDP port" in out.err, out.err
    return rc, json.loads(out.out)


def _by_id(report: dict) -> dict[str, dict]:
    return {f["id"]: f for f in report["findings"]}


@pytest.mark.serial("nmap at a fixed high packet rate")
@pytest.mark.timeout(240)
def test_normal_staging_gateway_passes(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    _need()
    sbom = fixtures.sbom(tmp_path / "sbom.json", {"cryptography": "44.0.1", "urllib3": "2.2.3"})
    advs = fixtures.advisories(tmp_path / "osv.json",
                               fixtures.advisory(fixtures.VULN_ID, "urllib3", "0", "1.26.5"))
    html = tmp_path / "scan.html"
    out = tmp_path / "scan.json"
    rc, rep = _scan(capsys, "--sbom", str(sbom), "--advisories", str(advs), "--html", str(html),
                    "--out", str(out))
    f = _by_id(rep)
    assert rc == 0, [x for x in rep["findings"] if x["verdict"] == "fail"]
    assert rep["summary"]["verdict"] == "pass" and passed(rep)
    for fid in ("ports.wan.tcp", "ports.wan.udp", "ports.lan.tcp", "ports.lan.udp",
                "tls.lan-8883.protocols", "tls.lan-8883.ciphers", "tls.lan-8883.certificate",
                "sbom.advisories"):
        assert f[fid]["verdict"] == "pass", f[fid]
    assert "10.97.2.1 tcp/8883" in " ".join(f["ports.lan.tcp"]["evidence"])
    assert f["tls.lan-8883.protocols"]["evidence"] == ["enabled: TLSv1.3"]
    # Every port of both protocols on both families, from both sides and from inside.
    for fid in ("ports.wan.tcp", "ports.wan.udp", "ports.lan.tcp", "ports.lan.udp"):
        ev = " ".join(f[fid]["evidence"])
        assert "65535" in ev and "IPv6" in ev and "IPv4" in ev, (fid, ev)
    assert GW_WAN6 in " ".join(f["ports.wan.udp"]["evidence"])
    listeners = " ".join(f["ports.listeners"]["evidence"])
    assert f["ports.listeners"]["verdict"] == "pass" and "tcp/8883" in listeners
    # TLS is checked on every declared TLS port, the admin port included.
    assert f["tls.lan-8443.protocols"]["verdict"] == "pass"
    # The hash printed with --json is the hash of the report written with --out.
    saved = json.loads(out.read_text())
    assert report_hash(saved) == rep["report_sha256"]
    assert report_hash(saved) in html.read_text()


@pytest.mark.serial("nmap at a fixed high packet rate")
@pytest.mark.timeout(240)
def test_weakened_staging_gateway_reports_each_weakness(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need()
    cert, key = fixtures.self_signed(tmp_path)
    debug_http = shlex.join([sys.executable, "-m", "http.server", str(EXTRA_PORT)])
    listen = shlex.join([sys.executable, str(LISTEN), "udp4:161", "udp6:5683:echo",
                         "tcp6:2324"])
    sbom = fixtures.sbom(tmp_path / "sbom.json", {"cryptography": "44.0.1", "urllib3": "1.26.4"})
    advs = fixtures.advisories(tmp_path / "osv.json",
                               fixtures.advisory(fixtures.VULN_ID, "urllib3", "0", "1.26.5"))
    rc, rep = _scan(capsys, "--sbom", str(sbom), "--advisories", str(advs),
                    "--stage-extra", f"tcp/{EXTRA_PORT}={debug_http}",
                    "--stage-extra", fixtures.tls10_server(TLS10_PORT, cert, key),
                    "--stage-extra", f"udp/161,udp/5683,tcp/2324={listen}")
    f = _by_id(rep)
    assert rc == 2 and rep["summary"]["verdict"] == "fail" and not passed(rep)
    # 1. the extra open port (and it is plaintext HTTP)
    extra = f[f"ports.lan.tcp-{EXTRA_PORT}"]
    assert extra["verdict"] == "fail" and extra["requirements"] == ["SR3-H-9", "R3-6"]
    assert "http" in extra["evidence"][0]
    assert f["ports.lan.tcp"]["verdict"] == "fail"
    assert f[f"tls.lan-{EXTRA_PORT}.tls"]["verdict"] == "fail"
    # 2. TLS 1.0 enabled (plus its non-AEAD suites and self-signed certificate)
    proto = f[f"tls.lan-{TLS10_PORT}.protocols"]
    assert proto["verdict"] == "fail" and "TLSv1.0" in proto["evidence"][0]
    assert f[f"tls.lan-{TLS10_PORT}.ciphers"]["verdict"] == "fail"
    assert f[f"tls.lan-{TLS10_PORT}.certificate"]["verdict"] == "fail"
    # 3. the known-vulnerable package
    vuln = f["sbom.urllib3." + fixtures.VULN_ID.lower()]
    assert vuln["verdict"] == "fail" and "urllib3 1.26.4" in vuln["evidence"][0]
    assert "1.26.5" in vuln["remediation"]
    # 4. undeclared listeners on both families and protocols, each found: a silent IPv4 UDP
    # listener (open|filtered, probed further), an answering IPv6-only UDP one, an IPv6-only TCP
    for fid, where in ((f"ports.lan.tcp-{EXTRA_PORT}", "10.97.2.1 tcp/2323"),
                       ("ports.lan.udp-161", "10.97.2.1 udp/161 open|filtered"),
                       ("ports.lan.udp-5683", "fd97:2::1 udp/5683"),
                       ("ports.lan.tcp-2324", "fd97:2::1 tcp/2324")):
        assert f[fid]["verdict"] == "fail" and where in " ".join(f[fid]["evidence"]), f[fid]
    assert "no answer" in " ".join(f["ports.lan.udp-161"]["evidence"])
    assert "answered" in " ".join(f["ports.lan.udp-5683"]["evidence"])
    assert f["ports.lan.udp"]["verdict"] == "fail" and f["ports.listeners"]["verdict"] == "fail"
    # The gateway's own endpoint still passes, and nothing leaks to the WAN side.
    assert f["tls.lan-8883.protocols"]["verdict"] == "pass"
    assert f["ports.wan.tcp"]["verdict"] == "pass" and f["ports.wan.udp"]["verdict"] == "pass"
    assert set(rep["summary"]["failed"]) >= {f"ports.lan.tcp-{EXTRA_PORT}",
                                             f"tls.lan-{TLS10_PORT}.protocols",
                                             "sbom.urllib3." + fixtures.VULN_ID.lower()}


def test_scan_that_cannot_run_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nmap, no sslscan
    assert main(["scan", "--board", "rpi4"]) == 1
    assert "nmap is not installed" in capsys.readouterr().err
    monkeypatch.undo()
    bad = tmp_path / "osv.json"
    bad.write_text("[{\"no\": \"id\"}]")
    assert main(["scan", "--board", "rpi4", "--advisories", str(bad)]) == 1
    assert main(["scan", "--board", "no-such-board"]) == 1
    assert main(["scan", "--board", "rpi4", "--stage-extra", "tcp/99999=true"]) == 1


@pytest.mark.parametrize("where", ["afile.txt/sub/out.json", "missing/out.json", "adir"])
@pytest.mark.parametrize("flag", ["--out", "--html"])
def test_unwritable_output_refused_before_the_scan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        flag: str, where: str) -> None:
    (tmp_path / "afile.txt").write_text("a file, not a folder")
    (tmp_path / "adir").mkdir()

    def scan(*args: object) -> dict:
        raise AssertionError("the scan ran before its output path was checked")

    monkeypatch.setattr(scan_cli, "run_scan", scan)
    assert main(["scan", "--board", "rpi4", flag, str(tmp_path / where)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and flag in err and "Traceback" not in err, err
