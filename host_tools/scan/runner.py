"""Run the release scan end to end: staging gateway up, tools, findings, report, lab down."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from firmware.common import osv
from firmware.common.boards import load_board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import StateError
from host_tools.release.sbom import release_sbom
from host_tools.scan import findings as F
from host_tools.scan import tools
from host_tools.scan.netlab import GW_LAN, GW_WAN, Lab
from host_tools.scan.report import build_report
from host_tools.scan.staging import ExtraService, Staging, lab_interfaces

DECLARED = {("tcp", LAN_DEVICE_PORT), ("tcp", ADMIN_HTTPS_PORT)}
ADMIN_TODO = ("the staging gateway serves no admin API on tcp/%d: nothing to probe (TODO: once "
              "`mamori-gateway run` starts firmware/gateway/admin, this probe runs automatically)")


def _nmap(lab: Lab, ns: str, targets: list[str], udp: bool, ports: str | None = None,
          sv: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(lab.exec_args(ns, tools.nmap_args(targets, udp, ports, sv)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(p: subprocess.Popen[str], what: str) -> list[dict[str, Any]]:
    try:
        out, err = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise StateError(f"nmap ({what}) did not finish in time")
    if p.returncode != 0:
        raise StateError(f"nmap ({what}) failed: {err.strip()[-300:]}")
    return tools.parse_nmap(out)


def _probe(lab: Lab, ns: str, kind: str, host: str, port: int) -> dict[str, Any]:
    proc = lab.run(ns, [sys.executable, "-m", "host_tools.scan.probe", kind, host, str(port)],
                   check=False, timeout=90)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return {"error": f"probe failed: {proc.stderr.strip()[-300:]}"}
    return data if isinstance(data, dict) else {"error": "probe printed no object"}


def _sslscan(lab: Lab, ns: str, host: str, port: int) -> dict[str, Any]:
    proc = lab.run(ns, tools.sslscan_args(host, port), check=False, timeout=120)
    return tools.parse_sslscan(tools.sslscan_xml(proc.stdout))


def _merge_services(hosts: list[dict[str, Any]], sv: list[dict[str, Any]]) -> None:
    info = {(h["address"], p["proto"], p["port"]): p for h in sv for p in h["ports"]}
    for h in hosts:
        for p in h["ports"]:
            s = info.get((h["address"], p["proto"], p["port"]))
            if s:
                p.update({k: s[k] for k in ("service", "product", "tunnel") if s[k]})


def scan_lab(lab: Lab) -> list[dict[str, Any]]:
    """Scan a running staging gateway from both sides; every finding."""
    both = [GW_WAN, GW_LAN]
    procs = {"wan-tcp": _nmap(lab, lab.wan, both, False),
             "wan-udp": _nmap(lab, lab.wan, both, True),
             "lan-tcp": _nmap(lab, lab.lan, [GW_LAN], False),
             "lan-udp": _nmap(lab, lab.lan, [GW_LAN], True)}
    res = {k: _collect(p, k) for k, p in procs.items()}
    # TLS before service detection: the gateway's monitor blocks a source after repeated
    # refused handshakes, and nmap -sV's probes are refused handshakes too.
    tls: list[dict[str, Any]] = []
    endpoints = [("lan", lab.lan, p) for p in F.open_ports(res["lan-tcp"])]
    endpoints += [("wan", lab.wan, p) for p in F.open_ports(res["wan-tcp"])]
    for side, ns, p in endpoints:
        time.sleep(tools.RATE_REFILL_S)  # the firewall's per-source bucket refills
        cert = _probe(lab, ns, "cert", p["address"], p["port"])
        tls += F.tls_endpoint(side, p["port"], _sslscan(lab, ns, p["address"], p["port"]), cert)
    for side, hosts, ns in (("wan", res["wan-tcp"], lab.wan), ("lan", res["lan-tcp"], lab.lan)):
        opened = F.open_ports(hosts)
        if opened:
            sv = _collect(_nmap(lab, ns, sorted({p["address"] for p in opened}), False,
                                ",".join(sorted({str(p["port"]) for p in opened})), True),
                          side + "-services")
            _merge_services(hosts, sv)
    out = [F.wan_exposure(res["wan-tcp"], "tcp", "all 65535 TCP ports of both gateway addresses"),
           F.wan_exposure(res["wan-udp"], "udp", f"top {tools.UDP_TOP_PORTS} UDP ports")]
    out += F.lan_exposure(res["lan-tcp"], "tcp", DECLARED, "all 65535 TCP ports")
    out += F.lan_exposure(res["lan-udp"], "udp", DECLARED, f"top {tools.UDP_TOP_PORTS} UDP ports")
    out += tls
    lan_open = {p["port"] for p in F.open_ports(res["lan-tcp"])}
    if ADMIN_HTTPS_PORT in lan_open:
        out += F.admin_api(ADMIN_HTTPS_PORT, _probe(lab, lab.lan, "admin", GW_LAN,
                                                    ADMIN_HTTPS_PORT))
    else:
        out.append(F.finding(f"admin.tcp-{ADMIN_HTTPS_PORT}", "admin", "Admin API probes",
                             F.SKIPPED, [ADMIN_TODO % ADMIN_HTTPS_PORT]))
    return out


def sbom_findings(board: str, sbom_path: Path | None,
                  advisories_path: Path | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """SBOM vs local OSV advisories (skipped, and said so, without an advisory file)."""
    sbom = osv.load_sbom(sbom_path) if sbom_path else release_sbom(board)
    comps = osv.components(sbom)
    source: dict[str, Any] = {
        "sbom": str(sbom_path) if sbom_path else "generated (host_tools.release.sbom)",
        "components": len(comps)}
    if advisories_path is None:
        return [F.finding("sbom.advisories", "sbom", "SBOM checked against advisories",
                          F.SKIPPED, [f"{len(comps)} components; no --advisories file given"])
                ], source
    advs = osv.load_advisories(advisories_path)
    label = f"{advisories_path} ({len(advs)} advisories)"
    source["advisories"] = label
    return F.advisories(osv.match(sbom, advs), len(comps), label), source


def run_scan(board: str, advisories: Path | None = None, sbom: Path | None = None,
             extra: tuple[ExtraService, ...] = ()) -> dict[str, Any]:
    """The whole release scan; StateError/ConfigError when it cannot run (exit 1)."""
    profile = load_board(board)
    versions = {"nmap": tools.version("nmap"), "sslscan": tools.version("sslscan")}
    sbom_out, sbom_src = sbom_findings(board, sbom, advisories)  # fail fast on bad inputs
    wan_if, lan_if = lab_interfaces(profile)
    with tempfile.TemporaryDirectory(prefix="mamori-scan-") as tmp, Lab(wan_if, lan_if) as lab:
        staging = Staging(lab, board, Path(tmp), extra).up()
        found = scan_lab(lab)
    staging["sbom"] = sbom_src
    return build_report(board, found + sbom_out, staging, versions)
