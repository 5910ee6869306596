"""TLS crypto policy of every context the gateway uses, audited and exercised (SR3-H-4, UK5)."""

from __future__ import annotations

import ssl
from typing import Any

from firmware.common import tlspolicy
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive, passed
from firmware.gateway.selftest.tlsprobe import HOST, ProbePKI, handshake, weak_context

CBC_SUITE = "ECDHE-ECDSA-AES128-SHA256"  # TLS 1.2, ECDHE but CBC + HMAC: not AEAD


def _tls11_available(pki: ProbePKI) -> bool:
    """Whether this OpenSSL can still speak TLS 1.1 at all (else that probe proves nothing)."""
    srv = weak_context("server", ssl.TLSVersion.TLSv1_1)
    srv.load_cert_chain(pki.cert_file, pki.key_file)
    return handshake(srv, weak_context("client", ssl.TLSVersion.TLSv1_1))[0]


def _probe_client(name: str, factory: Any, pki: ProbePKI, rogue: ProbePKI,
                  tls11: bool) -> tuple[list[str], list[str], list[str]]:
    ok_lines: list[str] = []
    bad: list[str] = []
    broken: list[str] = []

    def under_test() -> ssl.SSLContext:
        c = factory()
        c.load_verify_locations(cadata=pki.ca_pem)
        return c

    def server(p: ProbePKI, weak: ssl.SSLContext | None = None) -> ssl.SSLContext:
        s = weak or tlspolicy.server_context(require_client_cert=False)
        s.load_cert_chain(p.cert_file, p.key_file)
        return s

    ok, detail = handshake(server(pki), under_test())
    if not ok:
        broken.append(f"{name}: control handshake with a compliant server failed: {detail}")
        return ok_lines, bad, broken
    ok_lines.append(f"{name}: compliant server accepted ({detail})")
    probes = [("TLS 1.2 CBC-only server", server(pki, weak_context(
        "server", ssl.TLSVersion.TLSv1_2, CBC_SUITE)), HOST),
        ("server with an untrusted certificate", server(rogue), HOST),
        ("server presenting another host name", server(pki), "wrong-host.invalid")]
    if tls11:
        probes.insert(0, ("TLS 1.1-only server", server(pki, weak_context(
            "server", ssl.TLSVersion.TLSv1_1)), HOST))
    for label, srv, host in probes:
        ok, detail = handshake(srv, under_test(), host)
        if ok:
            bad.append(f"{name}: connected to a {label} ({detail})")
        else:
            ok_lines.append(f"{name}: refused a {label}")
    return ok_lines, bad, broken


def _probe_server(name: str, factory: Any, pki: ProbePKI, client_pki: ProbePKI,
                  tls11: bool) -> tuple[list[str], list[str], list[str]]:
    ok_lines: list[str] = []
    bad: list[str] = []
    broken: list[str] = []

    def under_test() -> ssl.SSLContext:
        s = factory()
        s.load_cert_chain(pki.cert_file, pki.key_file)
        s.load_verify_locations(cadata=client_pki.ca_pem)
        return s

    def client(weak: ssl.SSLContext | None = None) -> ssl.SSLContext:
        c = weak or tlspolicy.client_context(cadata=pki.ca_pem)
        c.load_cert_chain(client_pki.cert_file, client_pki.key_file)
        return c

    ok, detail = handshake(under_test(), client())
    if not ok:
        broken.append(f"{name}: control handshake with a compliant client failed: {detail}")
        return ok_lines, bad, broken
    ok_lines.append(f"{name}: compliant client accepted ({detail})")
    probes = [("TLS 1.2 CBC-only client", client(weak_context(
        "client", ssl.TLSVersion.TLSv1_2, CBC_SUITE)))]
    if tls11:
        probes.insert(0, ("TLS 1.1-only client", client(weak_context(
            "client", ssl.TLSVersion.TLSv1_1))))
    for label, cli in probes:
        ok, detail = handshake(under_test(), cli)
        if ok:
            bad.append(f"{name}: accepted a {label} ({detail})")
        else:
            ok_lines.append(f"{name}: refused a {label}")
    return ok_lines, bad, broken


@check("tls.policy", "TLS contexts: 1.2+ with ECDHE+AEAD only, verification on (exercised)",
       requirements=["SR3-H-4", "UK5"],
       remediation="build every SSLContext with firmware.common.tlspolicy (client_context / "
                   "server_context) and register it with tlspolicy.register_context")
def tls_policy(ctx: CheckContext) -> Outcome:
    """Audit each registered context, then handshake it over loopback against weak peers."""
    contexts = ctx.options.get("tls_contexts") or tlspolicy.registered()
    if not contexts:
        return inconclusive("no TLS context registered",
                            decide="install the gateway's bundle so its TLS contexts exist")
    tmp = ctx.tempdir()
    pki, rogue, client_pki = ProbePKI(tmp, "trusted"), ProbePKI(tmp, "rogue"), \
        ProbePKI(tmp, "client")
    tls11 = _tls11_available(pki)
    evidence, bad, broken = [], [], []
    if not tls11:
        evidence.append("this OpenSSL cannot speak TLS 1.1 even at SECLEVEL=0: the TLS 1.1 "
                        "probe is skipped, the version floor is checked statically")
    for name, (side, factory) in sorted(contexts.items()):
        problems = tlspolicy.audit(factory(), side)
        bad += [f"{name}: {p}" for p in problems]
        if not problems:
            evidence.append(f"{name} ({side}): settings comply with the policy")
        probe = _probe_client if side == "client" else _probe_server
        other = rogue if side == "client" else client_pki
        ok_lines, b, k = probe(name, factory, pki, other, tls11)
        evidence += ok_lines
        bad += b
        broken += k
    if bad:
        return failed(*bad, *evidence)
    if broken:
        return inconclusive(*broken, *evidence)
    return passed(*evidence)
