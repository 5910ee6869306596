"""Run the release scan end to end: staging gateway up, tools, findings, report, lab down.

Vantage points: the WAN side, the LAN side, and inside the gateway's namespace (where nothing
filters and every closed port answers, so the sweep there is the gateway's real listener
inventory). Every TCP and UDP port of every gateway address, IPv4 and IPv6, from each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common import osv
from firmware.common.boards import load_board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import StateError
from host_tools.release.sbom import release_sbom
from host_tools.scan import findings as F
from host_tools.scan import tools
from host_tools.scan.netlab import FAMILIES, GW_LAN, Lab
from host_tools.scan.report import build_report
from host_tools.scan.staging import ExtraService, Staging, lab_interfaces

DECLARED = {("tcp", LAN_DEVICE_PORT), ("tcp", ADMIN_HTTPS_PORT)}
DECLARED_TLS = sorted(port for _proto, port in DECLARED)  # every declared port speaks TLS
ADMIN_TODO = ("the staging gateway serves no admin API on tcp/%d: nothing to probe (TODO: once "
              "`mamori-gateway run` starts firmware/gateway/admin, this probe runs automatically)")
Sweep = tuple[str, str]  # (side, proto)
OUTSIDE_PARALLEL = 8  # all outside sweeps at once: they wait on nmap's pacing, not the CPU


def _nmap(lab: Lab, ns: str, targets: list[str], udp: bool, ports: str | None = None,
          sv: bool = False, local: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(lab.exec_args(ns, tools.nmap_args(targets, udp, ports, sv, local)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(p: subprocess.Popen[str], what: str) -> list[dict[str, Any]]:
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise StateError(f"nmap ({what}) did not finish in time")
    if p.returncode != 0:
        raise StateError(f"nmap ({what}) failed: {err.strip()[-300:]}")
    return tools.parse_nmap(out)


def _probe_args(kind: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "host_tools.scan.probe", kind, host, str(port)]


def _probe(lab: Lab, ns: str, kind: str, host: str, port: int) -> dict[str, Any]:
    proc = lab.run(ns, _probe_args(kind, host, port), check=False, timeout=90)
    return _probe_result(proc.stdout, proc.stderr)


def _probe_result(out: str, err: str) -> dict[str, Any]:
    try:
        data = json.loads(out)
    except ValueError:
        return {"error": f"probe failed: {err.strip()[-300:]}"}
    return data if isinstance(data, dict) else {"error": "probe printed no object"}


def _udp_probes(lab: Lab, jobs: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Protocol payloads to each (namespace, address, port), all at once."""
    procs = [(ns, host, port, subprocess.Popen(lab.exec_args(ns, _probe_args("udp", host, port)),
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                               text=True)) for ns, host, port in jobs]
    out = []
    for ns, host, port, p in procs:
        stdout, stderr = p.communicate(timeout=60)
        res = _probe_result(stdout, stderr)
        out.append(dict(res, ns=ns, address=host, proto="udp", port=port))
    return out


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


def _sweeps(lab: Lab) -> tuple[dict[Sweep, list[dict[str, Any]]], dict[str, str]]:
    """Every port of both protocols on both families from the three vantage points."""
    plan: dict[tuple[str, str, bool], tuple[str, list[str], bool]] = {}
    for fam, (wan_addr, lan_addr) in FAMILIES.items():
        for udp in (False, True):
            plan[("local", fam, udp)] = (lab.gw, [wan_addr, lan_addr], True)
            plan[("wan", fam, udp)] = (lab.wan, [wan_addr, lan_addr], False)
            plan[("lan", fam, udp)] = (lab.lan, [lan_addr], False)
    res: dict[Sweep, list[dict[str, Any]]] = {}

    def collect(key: tuple[str, str, bool], p: subprocess.Popen[str]) -> None:
        proto = "udp" if key[2] else "tcp"
        res.setdefault((key[0], proto), []).extend(_collect(p, f"{key[0]}-{key[1]}-{proto}"))

    # Inside first, one at a time: on the shared loopback, parallel sweeps (or the load of the
    # outside ones) would delay each other's answers. Outside sweeps are paced by nmap's rate
    # floor, a few at a time.
    for k, (ns, targets, _l) in plan.items():
        if k[0] == "local":
            collect(k, _nmap(lab, ns, targets, k[2], local=True))
    outside = [(k, ns, targets) for k, (ns, targets, _l) in plan.items() if k[0] != "local"]
    for i in range(0, len(outside), OUTSIDE_PARALLEL):
        batch = [(k, _nmap(lab, ns, targets, k[2])) for k, ns, targets in
                 outside[i:i + OUTSIDE_PARALLEL]]
        for k, p in batch:
            collect(k, p)
    desc = {}
    for side in ("wan", "lan", "local"):
        addrs = "; ".join(f"{fam} " + ", ".join(a for a in plan[(side, fam, False)][1])
                          for fam in FAMILIES)
        desc[side] = f"{addrs}: all 65535 %s ports"
    return res, desc


def _tls(lab: Lab, res: dict[Sweep, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The crypto policy of every declared TLS port (answering or not) and of every other
    open TCP port, per side and address family (labels lan, lan6, wan, wan6)."""
    lan_open = F.open_ports(res[("lan", "tcp")])
    endpoints: dict[tuple[str, int], tuple[str, str]] = {
        ("lan", port): (lab.lan, GW_LAN) for port in DECLARED_TLS}
    for side, ns, opened in (("lan", lab.lan, lan_open),
                             ("wan", lab.wan, F.open_ports(res[("wan", "tcp")]))):
        for p in opened:
            label = side if F.family(p["address"]) == "IPv4" else side + "6"
            endpoints.setdefault((label, p["port"]), (ns, p["address"]))
    reachable = {(p["address"], p["port"]) for p in lan_open}
    out: list[dict[str, Any]] = []
    for (label, port), (ns, addr) in sorted(endpoints.items()):
        if ns == lab.lan and (addr, port) not in reachable:
            out.append(F.finding(f"tls.{label}-{port}.tls", "tls",
                                 f"{label.upper()} tcp/{port} (declared TLS port)",
                                 F.INCONCLUSIVE, [f"{addr} tcp/{port} does not answer from the "
                                                  "LAN side: its TLS policy cannot be checked"]))
            continue
        # Each port and family has its own per-source meter in the firewall, which the sweeps
        # (one or two SYNs per port) barely touched: no pause is needed between endpoints.
        cert = _probe(lab, ns, "cert", addr, port)
        out += F.tls_endpoint(label, port, _sslscan(lab, ns, addr, port), cert)
    return out


def _service_detection(lab: Lab, res: dict[Sweep, list[dict[str, Any]]]
                       ) -> list[tuple[list[dict[str, Any]], str, subprocess.Popen[str]]]:
    """Start naming the services on open ports that are not declared (declared ones are TLS,
    judged by sslscan): the finding then says what it found (e.g. a debug HTTP server). It
    runs while the TLS checks do: it never touches the gateway's own servers."""
    procs = []
    for side, ns in (("wan", lab.wan), ("lan", lab.lan)):
        hosts = res[(side, "tcp")]
        opened = [p for p in F.open_ports(hosts) if side == "wan"
                  or ("tcp", p["port"]) not in DECLARED]
        for fam in FAMILIES:
            mine = [p for p in opened if F.family(p["address"]) == fam]
            if mine:
                procs.append((hosts, f"{side}-{fam}-services",
                              _nmap(lab, ns, sorted({p["address"] for p in mine}), False,
                                    ",".join(sorted({str(p["port"]) for p in mine})), True)))
    return procs


def _silent(_step: str) -> None:
    """No progress report."""


def scan_lab(lab: Lab, progress: Callable[[str], None] = _silent) -> list[dict[str, Any]]:
    """Scan a running staging gateway from both sides and from inside; every finding."""
    progress("sweeping every TCP and UDP port (IPv4, IPv6) from the WAN, the LAN and inside")
    res, desc = _sweeps(lab)
    local = {proto: F.listening(res[("local", proto)]) for proto in ("tcp", "udp")}
    # UDP listeners that stayed silent are probed further with protocol payloads: from inside
    # (a closed port refuses there: nmap merely lost its answer), and from the LAN and the WAN
    # side at the gateway address of each family they listen on.
    jobs: list[tuple[str, str, int]] = []
    for p in local["udp"]:
        jobs.append((lab.gw, p["address"], p["port"]))
        if p["address"] == FAMILIES[F.family(p["address"])][1]:
            jobs.append((lab.lan, p["address"], p["port"]))
        jobs.append((lab.wan, p["address"], p["port"]))
    probes = _udp_probes(lab, jobs)
    closed = {(a["address"], a["port"]) for a in probes if a["ns"] == lab.gw and a.get("closed")}
    local["udp"] = [p for p in local["udp"] if (p["address"], p["port"]) not in closed]
    lan_probes = [a for a in probes if a["ns"] == lab.lan and (a["address"], a["port"]) not in
                  closed]
    wan_probes = [a for a in probes if a["ns"] == lab.wan and (a["address"], a["port"]) not in
                  closed]
    progress("service detection, TLS and admin API probes")
    services = _service_detection(lab, res)
    try:
        tls = _tls(lab, res)
    finally:
        for hosts, what, proc in services:
            _merge_services(hosts, _collect(proc, what))
    out = [F.wan_exposure(res[("wan", "tcp")], "tcp", desc["wan"] % "TCP"),
           F.wan_exposure(res[("wan", "udp")], "udp", desc["wan"] % "UDP", wan_probes)]
    out += F.lan_exposure(res[("lan", "tcp")], "tcp", DECLARED, desc["lan"] % "TCP",
                          local["tcp"])
    out += F.lan_exposure(res[("lan", "udp")], "udp", DECLARED, desc["lan"] % "UDP",
                          local["udp"], lan_probes)
    out.append(F.listener_inventory(local["tcp"] + local["udp"], DECLARED,
                                    desc["local"] % "TCP and UDP"))
    out += tls
    lan_open = {p["port"] for p in F.open_ports(res[("lan", "tcp")])}
    if ADMIN_HTTPS_PORT in lan_open:
        out += F.admin_api(ADMIN_HTTPS_PORT, _probe(lab, lab.lan, "admin", GW_LAN,
                                                    ADMIN_HTTPS_PORT))
    else:
        out.append(F.finding(f"admin.tcp-{ADMIN_HTTPS_PORT}", "admin", "Admin API probes",
                             F.SKIPPED, [ADMIN_TODO % ADMIN_HTTPS_PORT]))
    return out


def sbom_findings(board: str, sbom_path: Path | None,
                  advisories_path: Path | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """SBOM vs local OSV advisories (inconclusive, and said so, without an advisory source)."""
    sbom = osv.load_sbom(sbom_path) if sbom_path else release_sbom(board)
    comps = osv.components(sbom)
    source: dict[str, Any] = {
        "sbom": str(sbom_path) if sbom_path else "generated (host_tools.release.sbom)",
        "components": len(comps)}
    if advisories_path is None:
        return [F.finding("sbom.advisories", "sbom", "SBOM checked against advisories",
                          F.INCONCLUSIVE,
                          [f"{len(comps)} components; no advisory source (--advisories FILE): "
                           "known vulnerabilities were not checked"])], source
    advs = osv.load_advisories(advisories_path)
    label = f"{advisories_path} ({len(advs)} advisories)"
    source["advisories"] = label
    return F.advisories(osv.match(sbom, advs), len(comps), label), source


def run_scan(board: str, advisories: Path | None = None, sbom: Path | None = None,
             extra: tuple[ExtraService, ...] = (),
             progress: Callable[[str], None] = _silent) -> dict[str, Any]:
    """The whole release scan; StateError/ConfigError when it cannot run (exit 1).

    ``progress`` hears each step as it starts (the scan takes about a minute)."""
    profile = load_board(board)
    versions = {"nmap": tools.version("nmap"), "sslscan": tools.version("sslscan")}
    sbom_out, sbom_src = sbom_findings(board, sbom, advisories)  # fail fast on bad inputs
    wan_if, lan_if = lab_interfaces(profile)
    progress("network namespaces for the WAN, the LAN and the gateway")
    with tempfile.TemporaryDirectory(prefix="mamori-scan-") as tmp, Lab(wan_if, lan_if) as lab:
        progress("staging gateway on the %s board starting" % board)
        staging = Staging(lab, board, Path(tmp), extra).up()
        found = scan_lab(lab, progress)
    staging["sbom"] = sbom_src
    return build_report(board, found + sbom_out, staging, versions)
