"""The pentester's tools: nmap (ports, services) and sslscan (TLS), run and parsed from XML."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET  # noqa: S405 - parses our own tools' output
from collections.abc import Sequence
from typing import Any

from firmware.core.errors import StateError

NMAP_COMMON = ["-n", "-Pn", "--host-timeout", "120s"]
# From outside, the firewall drops nearly every probe and nmap paces itself at the floor: a high
# floor keeps a full sweep short (65535 ports x 2 tries of 2 addresses in ~6 s). Inside the
# gateway namespace every closed port answers at once (ICMP unlimited there), so nmap's own
# pacing (-T5) is fast; a lower floor leaves room for those answers, so none is lost and
# mistaken for a silent listener.
RATE_OUTSIDE, RATE_LOCAL = 50000, 5000
ALL_PORTS = "1-65535"
SSLSCAN_PAUSE_MS = 70


class ToolMissing(StateError):
    """A scanning tool is not installed (the scan cannot run)."""


def require_tool(name: str) -> str:
    """Path of a tool, or ToolMissing with the install hint."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} is not installed", hint=f"apt-get install -y {name}")
    return path


def version(name: str) -> str:
    """The tool's version string."""
    arg = "--version"
    out = subprocess.run([require_tool(name), arg], capture_output=True, text=True, timeout=10)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else "unknown"


def _xml(text: str, tool: str) -> ET.Element:
    try:
        return ET.fromstring(text)  # noqa: S314 - output of a local tool, not remote input
    except ET.ParseError as exc:
        raise StateError(f"{tool} produced unreadable XML: {exc}")


def parse_nmap(text: str) -> list[dict[str, Any]]:
    """Hosts from ``nmap -oX -``: address, listed ports (proto, port, state, service) and the
    state of the others (``others``: e.g. every unlisted port is open|filtered)."""
    root = _xml(text, "nmap")
    hosts = []
    for h in root.iter("host"):
        addr_el = h.find("address")
        addr = addr_el.get("addr", "") if addr_el is not None else ""
        ports = []
        for p in h.iter("port"):
            st = p.find("state")
            svc = p.find("service")
            ports.append({
                "proto": p.get("protocol", ""), "port": int(p.get("portid", "0")),
                "state": st.get("state", "") if st is not None else "",
                "service": svc.get("name", "") if svc is not None else "",
                "product": " ".join(x for x in ((svc.get("product", ""), svc.get("version", ""))
                                                if svc is not None else ()) if x),
                "tunnel": svc.get("tunnel", "") if svc is not None else "",
            })
        # The ports nmap did not list share its "extraports" state (the most common one).
        extra = [(int(e.get("count", "0") or 0), e.get("state", "")) for e in h.iter("extraports")]
        hosts.append({"address": addr, "ports": ports,
                      "others": max(extra)[1] if extra else ""})
    return hosts


def nmap_args(targets: Sequence[str], udp: bool, ports: str | None = None,
              service_detection: bool = False, local: bool = False) -> list[str]:
    """nmap command line: every port (or the given ones) of one protocol, one address family
    (IPv6 when the targets are IPv6 addresses)."""
    # Outside, a lost probe could hide an exposure: one retry. Inside, every closed port
    # answers over loopback at once, and a UDP port left silent is confirmed by a probe.
    args = [require_tool("nmap"), *NMAP_COMMON, "-sU" if udp else "-sS",
            "-T5" if local else "-T4", "--max-retries", "0" if local else "1",
            "--min-rate", str(RATE_LOCAL if local else RATE_OUTSIDE),
            "-p", ports or ALL_PORTS]
    if any(":" in t for t in targets):
        args.append("-6")
    if service_detection:
        args += ["-sV", "--version-light"]
    return [*args, "-oX", "-", *targets]


def parse_sslscan(text: str) -> dict[str, Any]:
    """One endpoint from ``sslscan --xml=-``: protocols, accepted ciphers, certificate."""
    root = _xml(text, "sslscan")
    test = root.find("ssltest")
    if test is None:
        err = root.find("error")
        return {"protocols": {}, "ciphers": [], "certificate": None,
                "error": (err.text or "").strip() if err is not None else "no TLS test result"}
    protocols = {}
    for p in test.iter("protocol"):
        name = ("SSLv" if p.get("type") == "ssl" else "TLSv") + p.get("version", "")
        protocols[name] = p.get("enabled") == "1"
    ciphers = [{"version": c.get("sslversion", ""), "name": c.get("cipher", ""),
                "bits": int(c.get("bits", "0") or 0), "strength": c.get("strength", "")}
               for c in test.iter("cipher")]
    cert = None
    c_el = test.find("certificates/certificate")
    if c_el is not None:
        pk = c_el.find("pk")
        cert = {
            "signature_algorithm": (c_el.findtext("signature-algorithm") or "").strip(),
            "key_type": pk.get("type", "") if pk is not None else "",
            "key_bits": int(pk.get("bits", "0") or 0) if pk is not None else 0,
            "subject": (c_el.findtext("subject") or "").strip(),
            "self_signed": (c_el.findtext("self-signed") or "").strip() == "true",
            "expired": (c_el.findtext("expired") or "").strip() == "true",
            "not_after": (c_el.findtext("not-valid-after") or "").strip(),
        }
    return {"protocols": protocols, "ciphers": ciphers, "certificate": cert, "error": ""}


def sslscan_args(host: str, port: int) -> list[str]:
    """sslscan command line for one endpoint (XML on stdout)."""
    # Paced below the firewall's per-source limit (20 new connections/s, burst 40): a burst
    # would be dropped silently and read as "protocol not supported".
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [require_tool("sslscan"), "--no-colour", "--xml=-", "--timeout=5",
            f"--sleep={SSLSCAN_PAUSE_MS}", target]


def sslscan_xml(stdout: str) -> str:
    """The XML part of sslscan's stdout; closed when sslscan stopped early (server hung up)."""
    start = stdout.find("<?xml")
    if start < 0:
        raise StateError("sslscan printed no XML result", hint=stdout.strip()[-300:])
    xml = stdout[start:]
    end = xml.rfind("</document>")
    if end >= 0:
        return xml[:end + len("</document>")]
    xml = xml.rstrip()
    if "<ssltest" in xml and "</ssltest>" not in xml:
        xml += "\n</ssltest>"
    return xml + "\n</document>"
