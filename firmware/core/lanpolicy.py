"""The LAN's TLS floor per device model, from the site's signed allowlist (portable).

TLS 1.3 by default. A model whose allowlist entry declares a constrained stack
(``"constrained_stack": true``, ``mamori provision allow … --constrained-stack``: a
microcontroller whose TLS library offers TLS 1.2 only, such as Mbed TLS in MicroPython) may
negotiate TLS 1.2, with ECDHE key exchange and AEAD suites only. The gateway's LAN server
accepts TLS 1.2 handshakes only while some IP model of its allowlist declares such a stack, and
after the handshake, when the certificate has told it the model, refuses a device that
negotiated below its own model's floor (a normal model on TLS 1.2 is refused like any other
failed admission).
"""

ENTRY_KEY = "constrained_stack"
TLS12 = "TLSv1.2"
TLS13 = "TLSv1.3"
# Negotiated version names as CPython's ssl reports them, in order.
ORDER = ("SSLv3", "TLSv1", "TLSv1.1", TLS12, TLS13)
TLS12_SUITES = "ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305)"


def constrained(entry: object) -> bool:
    """True when an allowlist entry declares a constrained TLS stack."""
    return isinstance(entry, dict) and entry.get(ENTRY_KEY) is True


def floor_for(entry: object) -> str:
    """The lowest TLS version a device of this allowlist entry may negotiate."""
    return TLS12 if constrained(entry) else TLS13


def server_floor(entries: "list | tuple") -> str:
    """The LAN server's floor: TLS 1.2 only while some IP model declares a constrained stack."""
    for e in entries:
        if constrained(e) and "ip" in (e.get("transports") or ()):
            return TLS12
    return TLS13


def constrained_models(entries: "list | tuple") -> list:
    """``maker/model`` of every IP model allowed on TLS 1.2, sorted."""
    out = []
    for e in entries:
        if constrained(e) and "ip" in (e.get("transports") or ()):
            out.append(str(e.get("maker")) + "/" + str(e.get("model")))
    out.sort()
    return out


def rank(version: object) -> int:
    """Position of a negotiated version name in ORDER (-1: unknown, below everything)."""
    for i in range(len(ORDER)):
        if ORDER[i] == version:
            return i
    return -1


def refusal(floor: str, negotiated: object, model: str = "") -> "str | None":
    """Why a device whose floor is `floor` and that negotiated `negotiated` is refused, or None
    when it may stay (`model`: its ``maker/model``, for the reason)."""
    if rank(negotiated) >= rank(floor):
        return None
    return ("%s negotiated, but model %s requires %s or later (only models that declare a "
            "constrained stack may use %s)" % (str(negotiated)[:16] or "no TLS version",
                                              model[:129] or "?", floor, TLS12))
