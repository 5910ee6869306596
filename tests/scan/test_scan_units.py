"""Release-scan logic without namespaces: OSV matching, tool parsers, policy, report, gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.common import osv
from firmware.core.errors import ConfigError, PolicyError, StateError
from host_tools.release.sbom import release_sbom
from host_tools.scan import findings as F
from host_tools.scan import tools
from host_tools.scan.gate import check_scan
from host_tools.scan.report import build_report, passed, render_html, report_hash
from host_tools.scan.staging import ExtraService
from tests.scan import fixtures

SSLSCAN_TLS10 = """<?xml version="1.0" encoding="UTF-8"?>
<document title="SSLScan Results" version="2.0.7">
 <ssltest host="10.0.0.1" sniname="10.0.0.1" port="4433">
  <protocol type="ssl" version="3" enabled="0" />
  <protocol type="tls" version="1.0" enabled="1" />
  <protocol type="tls" version="1.2" enabled="1" />
  <protocol type="tls" version="1.3" enabled="0" />
  <cipher status="preferred" sslversion="TLSv1.2" bits="256" cipher="ECDHE-ECDSA-AES256-SHA"
   id="0xC00A" strength="acceptable" />
  <cipher status="accepted" sslversion="TLSv1.2" bits="256" cipher="ECDHE-ECDSA-AES256-GCM-SHA384"
   id="0xC02C" strength="strong" />
  <cipher status="accepted" sslversion="TLSv1.0" bits="256" cipher="ADH-AES256-SHA"
   id="0x003A" strength="anonymous" />
 <certificates><certificate type="short">
   <signature-algorithm>sha1WithRSAEncryption</signature-algorithm>
   <pk error="false" type="RSA" bits="1024" />
   <subject><![CDATA[weak]]></subject><self-signed>true</self-signed>
   <not-valid-after>Jan  1 00:00:00 2020 GMT</not-valid-after><expired>true</expired>
 </certificate></certificates>
 </ssltest>
</document>"""

NMAP = """<?xml version="1.0"?><nmaprun><host><address addr="10.0.0.1" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="8883"><state state="open"/><service name="ssl"/></port>
<port protocol="tcp" portid="2323"><state state="open"/><service name="http"
 product="SimpleHTTPServer" version="0.6"/></port>
<port protocol="udp" portid="53"><state state="open|filtered"/></port></ports></host></nmaprun>"""


# -- OSV -------------------------------------------------------------------------------------
def test_osv_ranges_versions_and_ecosystems() -> None:
    adv = fixtures.advisory("A-1", "Py_Pkg", "1.0", "1.5")
    assert osv.is_affected(adv, "PyPI", "py-pkg", "1.0")
    assert osv.is_affected(adv, "pypi", "PY.PKG", "1.4.9")
    assert not osv.is_affected(adv, "PyPI", "py-pkg", "1.5")  # fixed is exclusive
    assert not osv.is_affected(adv, "PyPI", "py-pkg", "0.9")
    assert not osv.is_affected(adv, "npm", "py-pkg", "1.2")  # other ecosystem
    assert not osv.is_affected(adv, "PyPI", "other", "1.2")
    last = fixtures.advisory("A-2", "p", "0", last_affected="2.0")
    assert osv.is_affected(last, "PyPI", "p", "2.0") and not osv.is_affected(last, "PyPI", "p",
                                                                             "2.0.1")
    listed = fixtures.advisory("A-3", "p", "9.0", "9.1", versions=["0.1-weird"])
    assert osv.is_affected(listed, "PyPI", "p", "0.1-weird")  # explicit versions[] list
    two = {"id": "A-4", "affected": [{"package": {"ecosystem": "PyPI", "name": "p"}, "ranges": [
        {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.2"},
                                         {"introduced": "2.0"}, {"fixed": "2.3"}]}]}]}
    assert [osv.is_affected(two, "PyPI", "p", v) for v in ("0.9", "1.1", "1.7", "2.1", "2.3")] \
        == [False, True, False, True, False]
    git_only = {"id": "A-5", "affected": [{"package": {"ecosystem": "PyPI", "name": "p"},
                                           "ranges": [{"type": "GIT", "events": [
                                               {"introduced": "0"}]}]}]}
    assert not osv.is_affected(git_only, "PyPI", "p", "1.0")


def test_osv_files_and_match(tmp_path: Path) -> None:
    sbom = osv.load_sbom(fixtures.sbom(tmp_path / "s.json", {"urllib3": "1.26.4", "tuf": "5.0"}))
    withdrawn = dict(fixtures.advisory("W-1", "tuf", "0"), withdrawn="2024-01-01T00:00:00Z")
    advs = osv.load_advisories(fixtures.advisories(
        tmp_path / "a.json", fixtures.advisory("A-1", "urllib3", "0", "1.26.5"), withdrawn))
    assert [a["id"] for a in advs] == ["A-1"]
    hits = osv.match(sbom, advs)
    assert [(h["component"]["name"], h["id"], h["fixed"]) for h in hits] == [
        ("urllib3", "A-1", ["1.26.5"])]
    out = F.advisories(hits, 2, "test")
    assert [f["verdict"] for f in out] == ["fail", "fail"] and out[0]["id"] == "sbom.urllib3.a-1"
    assert [f["verdict"] for f in F.advisories([], 2, "test")] == ["pass"]
    for bad in ("[1, 2]", "{\"bomFormat\": \"SPDX\"}", "not json"):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ConfigError):
            osv.load_advisories(tmp_path / "bad.json") if bad != "{\"bomFormat\": \"SPDX\"}" \
                else osv.load_sbom(tmp_path / "bad.json")
    assert release_sbom("sim")["bomFormat"] == "CycloneDX"


# -- tools and policy ------------------------------------------------------------------------
def test_parsers_and_port_policy() -> None:
    hosts = tools.parse_nmap(NMAP)
    assert [p["port"] for p in F.open_ports(hosts)] == [8883, 2323]  # open|filtered is not open
    out = F.lan_exposure(hosts, "tcp", {("tcp", 8883)}, "test")
    assert out[0]["id"] == "ports.lan.tcp-2323" and out[0]["verdict"] == "fail"
    assert "SimpleHTTPServer 0.6" in out[0]["evidence"][0]
    assert out[-1]["verdict"] == "fail"
    assert F.lan_exposure(hosts, "tcp", {("tcp", 8883), ("tcp", 2323)}, "t")[-1]["verdict"] \
        == "pass"
    assert F.wan_exposure(hosts, "tcp", "t")["verdict"] == "fail"
    assert F.wan_exposure(hosts, "udp", "t")["verdict"] == "pass"
    with pytest.raises(StateError):
        tools.parse_nmap("<nmaprun")


def test_tls_policy_flags_old_protocols_weak_suites_and_bad_certificates() -> None:
    res = tools.parse_sslscan(SSLSCAN_TLS10)
    f = {x["id"]: x for x in F.tls_endpoint("lan", 4433, res, None)}
    assert f["tls.lan-4433.protocols"]["verdict"] == "fail"
    bad = " ".join(f["tls.lan-4433.ciphers"]["evidence"])
    assert "ECDHE-ECDSA-AES256-SHA (not ECDHE+AEAD)" in bad and "ADH-AES256-SHA" in bad
    assert "GCM" not in bad
    cert = " ".join(f["tls.lan-4433.certificate"]["evidence"])
    assert f["tls.lan-4433.certificate"]["verdict"] == "fail"
    assert "expired" in cert and "self-signed" in cert and "sha1" in cert
    # A good TLS 1.3-only endpoint with a sound certificate passes every check.
    good: dict = {"protocols": {"TLSv1.2": False, "TLSv1.3": True}, "ciphers": [],
                  "certificate": None}
    facts = {"subject": "CN=gw", "self_signed": False, "expired": False,
             "signature_algorithm": "EC-with-sha256", "key_type": "EC", "public_bits": 256}
    assert {x["verdict"] for x in F.tls_endpoint("lan", 8883, good, facts)} == {"pass"}
    weak_key = dict(facts, key_type="RSA", public_bits=1024)
    assert F.tls_endpoint("lan", 8883, good, weak_key)[-1]["verdict"] == "fail"
    plain: dict = {"protocols": {"TLSv1.3": False}, "ciphers": [], "certificate": None, "error": ""}
    assert [x["id"] for x in F.tls_endpoint("lan", 2323, plain, None)] == ["tls.lan-2323.tls"]
    # sslscan stopped early (server hung up): the XML is still closed and readable.
    cut = SSLSCAN_TLS10[:SSLSCAN_TLS10.index("<cipher")]
    assert tools.parse_sslscan(tools.sslscan_xml("text\n" + cut))["protocols"]["TLSv1.0"]


def test_admin_probe_policy() -> None:
    hdrs = {h.lower(): "x" for h in F._required_headers()}
    good = {"requests": [{"method": "GET", "target": "/api/status", "status": 401,
                          "headers": hdrs},
                         {"method": "GET", "target": "/api/../etc/passwd", "status": 400,
                          "headers": hdrs},
                         {"method": "TRACE", "target": "/api/status", "status": 501,
                          "headers": hdrs}]}
    assert {f["verdict"] for f in F.admin_api(8443, good)} == {"pass"}
    bad = json.loads(json.dumps(good))
    bad["requests"][0]["status"] = 200
    bad["requests"][1]["status"] = 500
    del bad["requests"][2]["headers"]["x-frame-options"]
    assert [f["verdict"] for f in F.admin_api(8443, bad)] == ["fail", "fail", "fail"]


def test_staged_service_spec() -> None:
    assert ExtraService.parse("tcp/2323=python3 -m http.server 2323").port == 2323
    multi = ExtraService.parse("udp/161,tcp/2324=listen")
    assert multi.ports == (("udp", 161), ("tcp", 2324)) and multi.command == "listen"
    for bad in ("tcp/2323", "icmp/1=x", "tcp/0=x", "tcp/70000=x", "tcp/ab=x", "tcp/1= ",
                "tcp/1,=x", "tcp/1,tcp/1=x"):
        with pytest.raises(ConfigError):
            ExtraService.parse(bad)


# -- report and gate -------------------------------------------------------------------------
def _report(verdict: str) -> dict:
    return build_report("rpi4", [F.finding("ports.wan.tcp", "ports", "t", verdict, ["e"]),
                                 F.finding("admin.tcp-8443", "admin", "t", "skipped", ["todo"])],
                        {"gateway": "sim"}, {"nmap": "7.93"})


def test_report_hash_and_html() -> None:
    ok = _report("pass")
    assert passed(ok) and ok["summary"]["exit_code"] == 0
    h = report_hash(ok)
    assert h == report_hash(json.loads(json.dumps(ok))) and len(h) == 64
    tampered = json.loads(json.dumps(ok))
    tampered["findings"][0]["evidence"] = ["edited"]
    assert report_hash(tampered) != h
    bad = _report("fail")
    assert not passed(bad) and bad["summary"]["exit_code"] == 2
    # passed() re-derives from the findings: an edited summary does not make a failure pass.
    bad["summary"]["verdict"] = "pass"
    assert not passed(bad)
    html = render_html(_report("fail"))
    assert "<script" not in html and "FAIL" in html and report_hash(_report("fail"))[:8]


def test_gate(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_report("pass")))
    bad.write_text(json.dumps(_report("fail")))
    rec = check_scan(good, None)
    assert rec == {"scan_report_sha256": report_hash(json.loads(good.read_text())),
                   "scan_verdict": "pass", "scan_override": ""}
    with pytest.raises(PolicyError):
        check_scan(bad, None)
    with pytest.raises(PolicyError):
        check_scan(None, None)
    with pytest.raises(ConfigError):
        check_scan(bad, "because")  # too short to be a reason
    rec = check_scan(bad, "accepted risk: admin API finding tracked in MAM-123")
    assert rec["scan_verdict"] == "fail" and rec["scan_override"].startswith("accepted risk")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "mamori-selftest/1"}))
    with pytest.raises(ConfigError):
        check_scan(tmp_path / "other.json", None)


def test_release_publish_refuses_failed_scan_unless_overridden(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from host_tools.cli.main import main
    from tests.ota.helpers import make_payload

    repo = tmp_path / "repo"
    assert main(["release", "init", str(repo), "--root-keys", "1", "--root-threshold", "1"]) == 0
    payload = make_payload(tmp_path, "1.0")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_report("fail")))
    base = ["release", "publish", str(repo), "--board", "sim", "--version", "1.0", str(payload)]
    capsys.readouterr()
    assert main(base + ["--scan-report", str(bad)]) == 1
    assert "the release scan failed: ports.wan.tcp" in capsys.readouterr().err
    assert main(base) == 1  # no scan at all
    assert main(["release", "history", str(repo), "--json"]) == 0
    assert [r["action"] for r in json.loads(capsys.readouterr().out)["history"]] == ["init"]
    reason = "accepted risk: WAN finding is a staging artefact (MAM-7)"
    assert main(base + ["--scan-report", str(bad), "--override-scan", reason, "--json"]) == 0
    rel = json.loads(capsys.readouterr().out)
    assert rel["scan_verdict"] == "fail" and rel["scan_override"] == reason
    assert rel["scan_report_sha256"] == report_hash(json.loads(bad.read_text()))
    main(["release", "history", str(repo), "--json"])
    gate = [r for r in json.loads(capsys.readouterr().out)["history"]
            if r["action"] == "scan-gate"]
    assert gate[-1]["scan_override"] == reason and gate[-1]["version"] == "1.0"


NMAP_UDP_LAN = """<?xml version="1.0"?><nmaprun>
<host><address addr="10.0.0.1" addrtype="ipv4"/><ports>
<port protocol="udp" portid="161"><state state="open|filtered"/></port>
<port protocol="udp" portid="5353"><state state="open|filtered"/></port></ports></host>
<host><address addr="fd00::1" addrtype="ipv6"/><ports>
<port protocol="udp" portid="5683"><state state="open"/></port></ports></host></nmaprun>"""
NMAP_UDP_INSIDE = """<?xml version="1.0"?><nmaprun>
<host><address addr="10.0.0.1" addrtype="ipv4"/><ports>
<port protocol="udp" portid="161"><state state="open|filtered"/></port>
<port protocol="udp" portid="9999"><state state="open|filtered"/></port>
<port protocol="udp" portid="53"><state state="closed"/></port></ports></host>
<host><address addr="fd00::1" addrtype="ipv6"/><ports>
<port protocol="udp" portid="5683"><state state="open"/></port></ports></host></nmaprun>"""


def test_open_filtered_udp_is_a_finding_where_something_listens() -> None:
    lan = tools.parse_nmap(NMAP_UDP_LAN)
    inside = F.listening(tools.parse_nmap(NMAP_UDP_INSIDE))
    assert sorted(p["port"] for p in inside) == [161, 5683, 9999]  # closed is not a listener
    probes = [{"address": "10.0.0.1", "proto": "udp", "port": 161, "answered": False,
               "tried": ["empty", "snmp"]},
              {"address": "fd00::1", "proto": "udp", "port": 5683, "answered": True,
               "payload": "coap", "bytes": 12, "tried": ["empty", "coap"]}]
    out = {f["id"]: f for f in F.lan_exposure(lan, "udp", set(), "t", inside, probes)}
    # a silent listener behind an open|filtered port: found, with the probe's evidence
    silent = " ".join(out["ports.lan.udp-161"]["evidence"])
    assert out["ports.lan.udp-161"]["verdict"] == "fail"
    assert "10.0.0.1 udp/161 open|filtered" in silent and "no answer to 2" in silent
    assert "answered the coap payload" in " ".join(out["ports.lan.udp-5683"]["evidence"])
    # open|filtered with no listener inside is the firewall dropping: not a finding
    assert "ports.lan.udp-5353" not in out
    # a listener the firewall hides is still a finding, of its own kind
    assert out["ports.listener.udp-9999"]["verdict"] == "fail"
    # ... unless the LAN side saw every port it did not list as open|filtered (nmap's
    # extraports): a silent UDP listener there cannot be told from a drop, so it is reported
    dropped = tools.parse_nmap(NMAP_UDP_LAN.replace(
        '<ports>\n<port protocol="udp" portid="161">',
        '<ports><extraports state="open|filtered" count="65533"/>\n'
        '<port protocol="udp" portid="161">'))
    assert dropped[0]["others"] == "open|filtered" and dropped[1]["others"] == ""
    out2 = {f["id"] for f in F.lan_exposure(dropped, "udp", set(), "t", inside, probes)}
    assert "ports.lan.udp-9999" in out2 and "ports.listener.udp-9999" not in out2
    assert out["ports.lan.udp"]["verdict"] == "fail"
    declared = {("udp", 161), ("udp", 5683), ("udp", 9999)}
    assert [f["verdict"] for f in F.lan_exposure(lan, "udp", declared, "t", inside, probes)] \
        == ["pass"]
    inv = F.listener_inventory(inside, {("udp", 161)}, "t")
    assert inv["verdict"] == "fail" and "undeclared: udp/9999" in inv["evidence"]
    assert F.listener_inventory(inside, declared, "t")["verdict"] == "pass"
    # from the WAN: an answer to a payload is exposure even when nmap saw open|filtered only
    quiet_wan: list = [h for h in lan if h["address"] == "10.0.0.1"]  # all open|filtered
    wan = F.wan_exposure(quiet_wan, "udp", "t", [dict(probes[1])])
    assert wan["verdict"] == "fail" and "answered" in wan["evidence"][0]
    assert F.wan_exposure(quiet_wan, "udp", "t", [probes[0]])["verdict"] == "pass"


def test_udp_payload_probe_tells_silent_from_answering_and_closed() -> None:
    import socket
    import threading

    from host_tools.scan.probe import udp_probe

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    echo = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    echo.bind(("::1", 0))

    def answer() -> None:
        data, addr = echo.recvfrom(2048)
        echo.sendto(b"pong" + data[:4], addr)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        got = udp_probe("::1", echo.getsockname()[1])
        assert got["answered"] is True and got["payload"] == "empty"
        quiet = udp_probe("127.0.0.1", silent.getsockname()[1])
        assert quiet["answered"] is False and len(quiet["tried"]) >= 5
        port = silent.getsockname()[1]
        silent.close()
        assert udp_probe("127.0.0.1", port).get("closed") is True
    finally:
        t.join(5)
        echo.close()


def test_missing_advisory_source_is_inconclusive_not_pass(tmp_path: Path) -> None:
    from host_tools.scan.runner import sbom_findings

    found, src = sbom_findings("sim", fixtures.sbom(tmp_path / "s.json", {"tuf": "5.0"}), None)
    assert [f["verdict"] for f in found] == ["inconclusive"] and "advisories" not in src
    rep = build_report("rpi4", [F.finding("ports.wan.tcp", "ports", "t", "pass", ["e"])]
                       + found, {"gateway": "sim"}, {"nmap": "7.93"})
    assert rep["summary"]["verdict"] == "inconclusive" and rep["summary"]["exit_code"] == 1
    assert rep["summary"]["inconclusive"] == ["sbom.advisories"] and not passed(rep)
    path = tmp_path / "rep.json"
    path.write_text(json.dumps(rep))
    with pytest.raises(PolicyError, match="inconclusive: sbom.advisories"):
        check_scan(path, None)
    rec = check_scan(path, "advisory mirror offline, rescan tracked in MAM-9")
    assert rec["scan_verdict"] == "inconclusive"
