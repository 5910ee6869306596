"""WAN checks: the platform connection's TLS context, audited and exercised (SR3-H-4, UK5).

The context under test is the one ``firmware.gateway.wan.client.WanClient`` really builds (its
constructor calls the WAN TLS factory), for a probe identity made of scratch certificates: the
pinned platform CA, a broker certificate for ``localhost`` and a gateway client certificate.
Loopback servers then present an untrusted CA, another host name, TLS 1.1 only and CBC suites
only: each must be refused, while a compliant mutual-TLS server must be accepted.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from cryptography import x509

from firmware.common import tlspolicy
from firmware.gateway.selftest.checks._common import verdict
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive, passed
from firmware.gateway.selftest.tlsprobe import (
    HOST,
    ProbePKI,
    expect_refused,
    handshake,
    weak_context,
)
from firmware.gateway.wan import client as wan_client
from firmware.gateway.wan.identity import WanIdentity
from firmware.gateway.wan.queue import OutboundQueue

CBC_SUITE = "ECDHE-ECDSA-AES128-SHA256"
WAN_REQS = ["SR3-H-4", "UK5"]


class WanProbe:
    """Scratch PKI (platform, gateway, rogue) and the WAN client's real context for it."""

    def __init__(self, tmp: Path) -> None:
        self.platform = ProbePKI(tmp, "platform")
        self.gateway = ProbePKI(tmp, "gateway")
        self.rogue = ProbePKI(tmp, "rogue")
        ca_file = tmp / "platform-ca.pem"
        ca_file.write_text(self.platform.ca_pem, encoding="ascii")
        self.identity = WanIdentity(
            gateway_id="selftest-probe", client_cert_path=self.gateway.cert_file,
            platform_ca_path=ca_file, command_verify_key=os.urandom(32), broker_host=HOST,
            client_key_path=self.gateway.key_file)
        self.queue = OutboundQueue(tmp / "outbox.db")
        self.tmp = tmp

    def client_context(self) -> ssl.SSLContext:
        """A fresh context exactly as the WAN client builds it."""
        c = wan_client.WanClient(self.identity, self.queue)
        return c._ctx  # the client keeps the context it hands to paho; no public accessor

    def server(self, pki: ProbePKI | None = None, weak: ssl.SSLContext | None = None,
               mutual: bool = True) -> ssl.SSLContext:
        """A broker-side context; mutual TLS against the gateway CA unless weak is given."""
        s = weak or tlspolicy.server_context(require_client_cert=mutual)
        p = pki or self.platform
        s.load_cert_chain(p.cert_file, p.key_file)
        if weak is None and mutual:
            s.load_verify_locations(cadata=self.gateway.ca_pem)
        return s

    def close(self) -> None:
        """Close the probe queue."""
        self.queue.close()


def _tls11_available(probe: WanProbe) -> bool:
    srv = weak_context("server", ssl.TLSVersion.TLSv1_1)
    srv.load_cert_chain(probe.platform.cert_file, probe.platform.key_file)
    return handshake(srv, weak_context("client", ssl.TLSVersion.TLSv1_1))[0]


def _pinned_only(ctx: ssl.SSLContext, probe: WanProbe) -> list[str]:
    cas = ctx.get_ca_certs(binary_form=True)
    want = x509.load_pem_x509_certificate(probe.platform.ca_pem.encode())
    others = [c for c in cas if x509.load_der_x509_certificate(c) != want]
    if others:
        return [f"trusts {len(others)} CA(s) besides the pinned platform CA (system store "
                "loaded?)"]
    if not cas:
        return ["trusts no CA at all"]
    return []


@check("wan.tls-policy", "WAN client context: TLS 1.2+, ECDHE+AEAD, verification on, CA pinned",
       requirements=WAN_REQS,
       remediation="build the platform connection's context only with "
                   "firmware.gateway.wan.tls.client_context (policy floor, pinned platform CA, "
                   "hostname check, client certificate)")
def tls_policy(ctx: CheckContext) -> Outcome:
    """Audit the WAN client's context and prove it completes mutual TLS with a good broker."""
    probe = WanProbe(ctx.tempdir())
    try:
        c = probe.client_context()
        problems = tlspolicy.audit(c, "client") + _pinned_only(c, probe)
        if problems:
            return failed(*problems)
        ok, detail = handshake(probe.server(), probe.client_context())
        if not ok:
            return inconclusive("control handshake with a compliant mutual-TLS broker failed: "
                                + detail)
        evidence = [f"settings comply (minimum {c.minimum_version.name}, "
                    f"{len(c.get_ciphers())} ECDHE+AEAD/TLS 1.3 suites, hostname check on)",
                    "trusts only the pinned platform CA",
                    f"mutual-TLS handshake with a compliant broker: {detail}, client "
                    "certificate presented"]
        installed = ctx.live_state_dir / "identity" / "platform-ca.pem"
        if installed.is_file():
            subj = x509.load_pem_x509_certificate(installed.read_bytes()).subject
            evidence.append(f"installed platform CA to pin: {subj.rfc4514_string()[:100]}")
        return passed(*evidence)
    finally:
        probe.close()


@check("wan.untrusted-server", "WAN client refuses untrusted, misnamed and downgraded brokers",
       requirements=WAN_REQS,
       remediation="never disable verification or the hostname check on the platform "
                   "connection; keep the TLS 1.2 floor and the ECDHE+AEAD suite list")
def untrusted_server(ctx: CheckContext) -> Outcome:
    """Loopback brokers with a rogue CA, a wrong name, TLS 1.1 and CBC suites: all refused."""
    probe = WanProbe(ctx.tempdir())
    try:
        ok, detail = handshake(probe.server(), probe.client_context())
        if not ok:
            return inconclusive("control handshake with a compliant broker failed: " + detail)
        evidence = [f"control: compliant broker accepted ({detail})"]
        probes = [
            ("a broker whose certificate comes from an untrusted CA",
             probe.server(probe.rogue, mutual=False), HOST),
            ("a broker with the platform CA's certificate for another host name",
             probe.server(mutual=False), "wrong-host.invalid"),
            ("a TLS 1.2 broker offering only CBC suites",
             probe.server(weak=weak_context("server", ssl.TLSVersion.TLSv1_2, CBC_SUITE)), HOST),
        ]
        if _tls11_available(probe):
            probes.append(("a TLS 1.1-only broker", probe.server(
                weak=weak_context("server", ssl.TLSVersion.TLSv1_1)), HOST))
        else:
            evidence.append("this OpenSSL cannot speak TLS 1.1 even at SECLEVEL=0: that probe "
                            "is skipped (the version floor is audited by wan.tls-policy)")
        bad, refused = expect_refused(
            ((label, srv, probe.client_context(), host) for label, srv, host in probes),
            "connected to")
        return verdict(bad, evidence + refused)
    finally:
        probe.close()
