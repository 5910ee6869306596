"""The LAN's TLS floor is what the signed allowlist says (per model: ``firmware.core.lanpolicy``).

Requirements: SR3-H-5 (encrypted path to devices, current protocols), SR2-H-2, C5.

TLS 1.3 unless an allowlisted IP model declares a constrained stack; then TLS 1.2 as well, with
ECDHE + AEAD suites only, and every device whose own model is not constrained is refused if it
negotiated TLS 1.2. The check builds the real LAN server context on a scratch copy, compares its
floor with the allowlist's, and exercises it over loopback with a probe CA added as a trust
anchor: a TLS 1.3 device (control), a TLS 1.2 device with an AEAD suite (accepted only when the
allowlist allows it), a TLS 1.2 device offering only CBC suites (always refused). Then the
admission step's per-model verdict on TLS 1.2 for each allowlisted IP model.
"""

from __future__ import annotations

import ssl

from cryptography.hazmat.primitives.serialization import Encoding

from firmware.common import tlspolicy
from firmware.core import lanpolicy
from firmware.core.errors import MamoriError
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.install import IDENTITY
from firmware.gateway.lan import tls as lantls
from firmware.gateway.selftest.checks._common import verdict
from firmware.gateway.selftest.checks.lan import ProbeSite
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive, not_applicable
from firmware.gateway.selftest.tlsprobe import handshake, weak_context

REQS = ["SR3-H-5", "SR2-H-2", "C5"]
AEAD12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
CBC12 = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA"


def _floor_of(ctx: ssl.SSLContext) -> str:
    v = ctx.minimum_version
    if v == ssl.TLSVersion.TLSv1_3:
        return lanpolicy.TLS13
    if v == ssl.TLSVersion.TLSv1_2:
        return lanpolicy.TLS12
    return v.name  # MINIMUM_SUPPORTED or older: always wrong


def _client(version: ssl.TLSVersion | None, ciphers: str | None,
            cert: tuple[object, object]) -> ssl.SSLContext:
    c = weak_context("client", version, ciphers)
    c.load_cert_chain(cert[0], cert[1])  # type: ignore[arg-type]
    return c


@check("lan.tls-policy", "LAN TLS floor is the allowlist's: TLS 1.3, TLS 1.2 only for "
       "constrained-stack models", requirements=REQS,
       remediation="build the LAN context only with firmware.gateway.lan.tls.server_context "
                   "(it takes the floor from the installed allowlist); declare a "
                   "microcontroller model with `mamori provision allow … --constrained-stack` "
                   "and reinstall the bundle")
def tls_policy(ctx: CheckContext) -> Outcome:
    """The LAN server's floor and suites against the allowlist, exercised on loopback."""
    if not (ctx.live_state_dir / IDENTITY / "gateway.json").is_file():
        return not_applicable("no LAN identity installed (lan.mutual-auth fails for that)")
    try:
        entries = DeviceAuthorizer(ctx.live_state_dir).allowlist
        board = ctx.board()
    except (MamoriError, OSError, ValueError) as exc:
        return failed(f"the installed allowlist is unusable: {exc}")
    expected = lanpolicy.server_floor(entries)
    models = lanpolicy.constrained_models(entries)
    scratch = ctx.scratch()
    try:
        server = lantls.server_context(scratch, board)
    except (MamoriError, OSError, ssl.SSLError) as exc:
        return failed(f"the LAN server context cannot be built: {exc}")
    actual = _floor_of(server)
    problems: list[str] = []
    evidence = [f"allowlist: {expected} floor ("
                + (f"TLS 1.2 allowed for {', '.join(models)}" if models
                   else "no model declares a constrained stack") + ")"]
    if actual != expected:
        problems.append(f"the LAN server's lowest version is {actual}, the allowlist calls for "
                        f"{expected}")
    else:
        evidence.append(f"LAN server context: lowest version {actual}")
    problems += [p for p in tlspolicy.audit(server, "server") if "weak suite" in p]
    site = ProbeSite(ctx.tempdir())
    probe = site.device("selftest-tls")
    server.load_verify_locations(cadata=site.cert.public_bytes(Encoding.PEM).decode())
    ok, detail = handshake(server, _client(None, None, probe[:2]))
    if not ok:
        return inconclusive("control: a TLS 1.3 device with a valid certificate was refused: "
                            + detail, *evidence)
    evidence.append(f"control: a valid device accepted ({detail})")
    ok12, detail12 = handshake(server, _client(ssl.TLSVersion.TLSv1_2, AEAD12, probe[:2]))
    if ok12 and expected == lanpolicy.TLS13:
        problems.append(f"accepted a TLS 1.2 handshake ({detail12}) although no allowlisted "
                        "model declares a constrained stack")
    elif not ok12 and expected == lanpolicy.TLS12:
        problems.append(f"refused a TLS 1.2 ECDHE + AEAD handshake although {', '.join(models)} "
                        f"may use it: {detail12[:80]}")
    else:
        evidence.append("TLS 1.2 with ECDHE + AEAD: %s" % ("accepted (%s)" % detail12 if ok12
                                                          else "refused: " + detail12[:80]))
    okcbc, detailcbc = handshake(server, _client(ssl.TLSVersion.TLSv1_2, CBC12, probe[:2]))
    if okcbc:
        problems.append(f"accepted TLS 1.2 with CBC suites only ({detailcbc})")
    else:
        evidence.append("refused TLS 1.2 offering CBC suites only: " + detailcbc[:80])
    problems += _per_model(entries, evidence)
    return verdict(problems, evidence)


def _per_model(entries: list[dict], evidence: list[str]) -> list[str]:
    """The admission step's verdict on a TLS 1.2 session for each allowlisted IP model."""
    ip = [e for e in entries if "ip" in (e.get("transports") or ())]
    normal = {"maker": "selftest", "model": "normal", "transports": ["ip"]}
    problems = []
    for e in ip + [normal]:  # a normal model always, so the refusal itself is exercised
        name = "%s/%s" % (e.get("maker"), e.get("model"))
        why = lanpolicy.refusal(lanpolicy.floor_for(e), lanpolicy.TLS12, name)
        if lanpolicy.constrained(e):
            if why is not None:
                problems.append(f"{name} declares a constrained stack but TLS 1.2 is refused")
            else:
                evidence.append(f"{name}: TLS 1.2 admitted (constrained stack)")
        elif why is None:
            problems.append(f"{name} would be admitted on TLS 1.2 without a constrained stack")
        else:
            evidence.append(f"{name}: TLS 1.2 refused at admission")
    return problems
