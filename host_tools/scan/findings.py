"""Judge raw tool results against the release policy: one finding (pass/fail/skipped) each.

Policy: nothing answers from the WAN side; on the LAN side only the declared ports
(``firmware.common.ports``) are open and every one of them speaks TLS that meets the crypto
policy (TLS 1.2+, for TLS 1.2 only ECDHE with AEAD ciphers, a sound certificate); nothing else
listens on any of the gateway's addresses (IPv4 and IPv6, TCP and UDP); the admin API sends its
security headers and refuses unauthenticated and malformed requests; no SBOM component has a
known advisory. A check that could not be made (no advisory source, a declared port that does
not answer) is ``inconclusive``: never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PASS, FAIL, SKIPPED, INCONCLUSIVE = "pass", "fail", "skipped", "inconclusive"
VERDICTS = (PASS, FAIL, SKIPPED, INCONCLUSIVE)
LISTENING = ("open", "open|filtered")
REQUIREMENTS = ["SR3-H-9", "R3-6"]
OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
AEAD_MARKERS = ("GCM", "CHACHA20", "CCM")


def finding(fid: str, category: str, title: str, verdict: str, evidence: list[str],
            remediation: str = "", severity: str = "info",
            requirements: list[str] | None = None) -> dict[str, Any]:
    """One finding of the report."""
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}")
    return {"id": fid, "category": category, "title": title, "verdict": verdict,
            "severity": severity if verdict == FAIL else "info",
            "evidence": [str(e) for e in evidence],
            "remediation": remediation if verdict == FAIL else "",
            "requirements": list(requirements or REQUIREMENTS)}


def open_ports(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ports nmap saw in state 'open' (something answered)."""
    return [dict(p, address=h["address"]) for h in hosts for p in h["ports"]
            if p["state"] == "open"]


def listening(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ports of a sweep where nothing filters (inside the gateway): open or open|filtered.

    Every closed port answers there, so open|filtered means a listener that stayed silent.
    """
    return [dict(p, address=h["address"]) for h in hosts for p in h["ports"]
            if p["state"] in LISTENING]


def family(address: str) -> str:
    """IPv4 or IPv6."""
    return "IPv6" if ":" in address else "IPv4"


def _desc(p: dict[str, Any]) -> str:
    svc = " ".join(x for x in (p.get("service", ""), p.get("product", "")) if x)
    state = "" if p.get("state", "open") == "open" else " " + p["state"]
    return f"{p['address']} {p['proto']}/{p['port']}{state}" + (f" ({svc})" if svc else "")


def _answer(side: str, a: dict[str, Any]) -> str:
    where = f"{a['address']} {a['proto']}/{a['port']}"
    if a.get("answered"):
        return f"payload probe from the {side} side: {where} answered the {a['payload']} " \
               f"payload ({a['bytes']} bytes)"
    tried = a.get("tried") or []
    why = f" ({a['error']})" if a.get("error") else ""
    return f"payload probe from the {side} side: {where} no answer to {len(tried)} protocol " \
           f"payloads ({', '.join(tried)}){why}"


def wan_exposure(hosts: list[dict[str, Any]], proto: str, scanned: str,
                 probes: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """From the WAN side nothing may answer: no open port on any gateway address, and no
    answer to protocol payloads sent to the ports the gateway listens on."""
    found = [_desc(p) for p in open_ports(hosts) if p["proto"] == proto]
    answered = [_answer("WAN", a) for a in probes if a["proto"] == proto and a.get("answered")]
    quiet = [_answer("WAN", a) for a in probes if a["proto"] == proto and not a.get("answered")]
    fid = f"ports.wan.{proto}"
    if not found and not answered:
        return finding(fid, "ports", f"No {proto.upper()} service reachable from the WAN",
                       PASS, [f"nmap {scanned}: no open port"] + quiet)
    return finding(fid, "ports", f"{proto.upper()} service(s) reachable from the WAN", FAIL,
                   found + answered,
                   "close the service or drop it in the WAN input/forward chains", "high")


def lan_exposure(hosts: list[dict[str, Any]], proto: str, declared: set[tuple[str, int]],
                 scanned: str, local: Sequence[dict[str, Any]] = (),
                 probes: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Only declared ports may be open from the LAN or listen on any gateway address.

    One finding per undeclared port: open from the LAN; open|filtered from the LAN where the
    gateway has a listener (probed further with protocol payloads); or a listener the firewall
    hides (found by the sweep inside the gateway). Then the summary for the protocol.
    """
    mine = [p for p in local if p["proto"] == proto]
    lan = [p for p in hosts_ports(hosts) if p["proto"] == proto and p["state"] == "open"]
    for q in mine:  # silent from the LAN: open|filtered, where nmap listed it or by default
        for h in hosts:
            if family(h["address"]) != family(q["address"]):
                continue
            st = next((x["state"] for x in h["ports"] if x["proto"] == proto
                       and x["port"] == q["port"]), h.get("others", ""))
            if st == "open|filtered" and not any(x["address"] == h["address"]
                                                 and x["port"] == q["port"] for x in lan):
                lan.append({"address": h["address"], "proto": proto, "port": q["port"],
                            "state": st})
    out = []
    for port in sorted({p["port"] for p in lan + mine} - {n for pr, n in declared if pr == proto}):
        from_lan = [p for p in lan if p["port"] == port]
        inside = [p for p in mine if p["port"] == port]
        ev = [_desc(p) for p in from_lan]
        ev += [f"listening on {p['address']} (sweep inside the gateway: {p['state']})"
               for p in inside]
        ev += [_answer("LAN", a) for a in probes if a["proto"] == proto and a["port"] == port]
        if from_lan:
            state = "open" if any(p["state"] == "open" for p in from_lan) else "open|filtered"
            out.append(finding(f"ports.lan.{proto}-{port}", "ports",
                               f"Undeclared {proto.upper()} port {port} {state} on the LAN side",
                               FAIL, ev, "remove the service from the release or declare and "
                               "justify it in firmware/common/ports.py", "medium"))
        else:
            out.append(finding(f"ports.listener.{proto}-{port}", "ports",
                               f"Undeclared {proto.upper()} listener on port {port} (firewalled)",
                               FAIL, ev, "remove the listener from the release (the firewall "
                               "is the only thing keeping it unreachable)", "low"))
    ok = [_desc(p) for p in lan if (proto, p["port"]) in declared]
    bad = [f["id"] for f in out]
    out.append(finding(f"ports.lan.{proto}", "ports",
                       f"LAN {proto.upper()} exposure limited to declared ports",
                       FAIL if bad else PASS,
                       [f"nmap {scanned}: {len(lan)} open"] + ok
                       + [f"undeclared: {b}" for b in bad],
                       "see the ports.lan.* and ports.listener.* findings", "medium"))
    return out


def hosts_ports(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every port nmap listed explicitly, with its host address."""
    return [dict(p, address=h["address"]) for h in hosts for p in h["ports"]]


def listener_inventory(local: list[dict[str, Any]], declared: set[tuple[str, int]],
                       scanned: str) -> dict[str, Any]:
    """What listens on the gateway's own addresses equals the declared ports."""
    extra = sorted({(p["proto"], p["port"]) for p in local} - declared)
    ev = [f"sweep inside the gateway, {scanned}: {len(local)} listening"]
    ev += [_desc(p) for p in local]
    return finding("ports.listeners", "ports", "Listeners on the gateway's addresses are the "
                   "declared ports", FAIL if extra else PASS,
                   ev + [f"undeclared: {pr}/{n}" for pr, n in extra],
                   "see the ports.lan.* and ports.listener.* findings", "medium")


def tls_endpoint(label: str, port: int, result: dict[str, Any],
                 cert_facts: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Crypto policy of one TCP endpoint from sslscan (plus the certificate as fetched)."""
    base = f"tls.{label}-{port}"
    title = f"{label.upper()} tcp/{port}"
    protos = result.get("protocols") or {}
    enabled = [p for p, on in protos.items() if on]
    if not enabled:
        why = result.get("error") or "no SSL/TLS protocol version accepted"
        return [finding(base + ".tls", "tls", f"{title} does not speak TLS", FAIL,
                        [f"sslscan: {why}"],
                        "serve only TLS on this port (plaintext services are not allowed)",
                        "high")]
    out = []
    old = [p for p in enabled if p in OLD_PROTOCOLS]
    out.append(finding(base + ".protocols", "tls", f"{title} accepts only TLS 1.2 or newer",
                       FAIL if old else PASS, ["enabled: " + ", ".join(sorted(enabled))],
                       "set minimum_version = TLSv1_2 (firmware/common/tlspolicy.py)", "high"))
    bad = []
    for c in result.get("ciphers") or []:
        if c["version"] == "TLSv1.3":
            continue
        name = c["name"]
        if c.get("strength") in ("anonymous", "null", "weak", "insecure"):
            bad.append(f"{c['version']} {name} ({c['strength']})")
        elif c["version"] == "TLSv1.2" and not (name.startswith("ECDHE-")
                                                and any(m in name for m in AEAD_MARKERS)):
            bad.append(f"{c['version']} {name} (not ECDHE+AEAD)")
    accepted = [f"{c['version']} {c['name']}" for c in result.get("ciphers") or []] or [
        "no TLS 1.2 or older suite accepted (TLS 1.3 suites are all AEAD with ephemeral keys)"]
    out.append(finding(base + ".ciphers", "tls", f"{title} cipher suites meet the policy",
                       FAIL if bad else PASS, (bad or accepted)[:30],
                       "restrict TLS 1.2 to ECDHE with AES-GCM/ChaCha20-Poly1305", "high"))
    out.append(_certificate(base, title, result.get("certificate"), cert_facts))
    return out


def _certificate(base: str, title: str, scanned: dict[str, Any] | None,
                 facts: dict[str, Any] | None) -> dict[str, Any]:
    # sslscan cannot complete a handshake against a mutual-TLS server; the probe's own
    # handshake (no client certificate) still receives the server certificate.
    cert = dict(scanned or {})
    if facts and not facts.get("error"):
        cert.update({k: v for k, v in facts.items() if v not in (None, "")})
    if not cert:
        why = (facts or {}).get("error", "no certificate retrieved")
        return finding(base + ".certificate", "tls", f"{title} certificate", SKIPPED, [why])
    problems = []
    if cert.get("expired"):
        problems.append("certificate has expired (" + str(cert.get("not_after", "")) + ")")
    if cert.get("not_yet_valid"):
        problems.append("certificate is not valid yet")
    if cert.get("self_signed"):
        problems.append("certificate is self-signed (no chain to the site CA)")
    sig = str(cert.get("signature_algorithm", ""))
    if "md5" in sig.lower() or "sha1" in sig.lower():
        problems.append("weak signature algorithm " + sig)
    ktype, kbits = str(cert.get("key_type", "")).upper(), int(cert.get("public_bits", 0) or 0)
    if ktype == "RSA" and 0 < kbits < 2048 or ktype == "EC" and 0 < kbits < 256:
        problems.append(f"weak {ktype} key ({kbits} bits)")
    ev = [f"subject {cert.get('subject', '?')}", f"signature {sig or '?'}",
          f"key {ktype or '?'} {kbits or '?'} bits", f"valid until {cert.get('not_after', '?')}"]
    return finding(base + ".certificate", "tls", f"{title} certificate is sound",
                   FAIL if problems else PASS, problems + ev,
                   "issue the endpoint a certificate from the site CA (P-256/RSA-2048+, "
                   "SHA-256, in validity)", "medium")


def advisories(hits: list[dict[str, Any]], n_components: int, source: str
               ) -> list[dict[str, Any]]:
    """Known-vulnerable components in the SBOM: one finding per hit, then the summary."""
    out = []
    for h in hits:
        c = h["component"]
        ev = [f"{c['name']} {c['version']} ({c['ref']}): {h['id']}"
              + (f" ({', '.join(h['aliases'])})" if h["aliases"] else "")]
        if h["summary"]:
            ev.append(h["summary"])
        fix = ("upgrade to " + " or ".join(h["fixed"])) if h["fixed"] else "remove or replace it"
        out.append(finding(f"sbom.{c['name'].lower()}.{h['id'].lower()}", "sbom",
                           f"{c['name']} {c['version']} is affected by {h['id']}", FAIL, ev,
                           fix + " and rebuild the release", "high"))
    out.append(finding("sbom.advisories", "sbom", "No SBOM component has a known advisory",
                       FAIL if hits else PASS,
                       [f"{n_components} versioned components checked against {source}",
                        f"{len(hits)} affected"],
                       "see the sbom.* findings", "high"))
    return out


_FALLBACK_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
                     "Referrer-Policy", "Strict-Transport-Security", "Cache-Control")


def _required_headers() -> tuple[str, ...]:
    try:
        from firmware.gateway.admin.web import REQUIRED_HEADERS
    except ImportError:
        return _FALLBACK_HEADERS
    return tuple(REQUIRED_HEADERS)


def admin_api(port: int, probe: dict[str, Any]) -> list[dict[str, Any]]:
    """The admin API refuses unauthenticated/malformed requests and sends security headers."""
    reqs = probe.get("requests") or []
    auth_bad: list[str] = []
    input_bad: list[str] = []
    hdr_bad: list[str] = []
    ok_ev: list[str] = []
    for r in reqs:
        line = f"{r['method']} {r['target']} -> {r['status'] or r.get('error', 'no answer')}"
        st = int(r["status"])
        if r["method"] == "TRACE" and st in (400, 403, 404, 405, 501):
            ok_ev.append(line)  # 501 Not Implemented is how HTTP servers refuse a method
        elif st == 0 or st >= 500:
            input_bad.append(line + " (no clean refusal)")
        elif r["target"] in ("/api/status", "/api/settings", "/api/accounts") \
                and r["method"] in ("GET", "POST"):
            (auth_bad if st not in (401, 403) else ok_ev).append(line)
        elif 200 <= st < 300:
            input_bad.append(line + " (accepted)")
        else:
            ok_ev.append(line)
        missing = [h for h in _required_headers() if h.lower() not in r.get("headers", {})]
        if st and missing:
            hdr_bad.append(f"{r['method']} {r['target']}: missing " + ", ".join(missing))
    base = f"admin.tcp-{port}"
    return [
        finding(base + ".authentication", "admin", "Admin API refuses unauthenticated access",
                FAIL if auth_bad else PASS, auth_bad or ok_ev,
                "require a session for every /api route except login", "critical"),
        finding(base + ".input", "admin",
                "Admin API refuses traversal, malformed bodies and TRACE without errors",
                FAIL if input_bad else PASS, input_bad or [f"{len(reqs)} requests refused"],
                "validate paths and bodies before routing; answer 4xx, never 5xx", "high"),
        finding(base + ".headers", "admin", "Admin API sends its security headers",
                FAIL if hdr_bad else PASS, hdr_bad or ["all responses carry "
                                                       + ", ".join(_required_headers())],
                "add the headers of firmware/gateway/admin/web.py to every response", "medium"),
    ]
