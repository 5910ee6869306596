"""Why a gateway refused a device, as a short code both sides know (portable).

The gateway sends ``{"type": "refused", "reason": "authentication failed", "code": CODE}``
after a failed admission; only a peer that completed mutual TLS (or the Noise handshake) with
site credentials ever sees it. A code names the class of problem the installer can act on and
nothing more: no serial number, no allowlist content, no hint whether a secret was close.
The device agent turns it into words and the action that fixes it (:func:`explain`).
"""

from firmware.core.errors import ConfigError, PolicyError

NOT_AUTHORISED = "not-authorised"
IDENTITY_MISMATCH = "identity-mismatch"
CREDENTIAL_REVOKED = "credential-revoked"
MODEL_NOT_ALLOWED = "model-not-allowed"
FIRMWARE_TOO_OLD = "firmware-too-old"
TICKET_REQUIRED = "ticket-required"
TICKET_INVALID = "ticket-invalid"
TICKET_EXPIRED = "ticket-expired"
TICKET_USED = "ticket-used"
GATEWAY_POLICY = "gateway-policy"
BUSY = "busy"
TLS_POLICY = "tls-policy"

# code -> (what happened, what the installer does about it)
CODES = {
    NOT_AUTHORISED: ("the gateway did not accept this device's credentials",
                     "check that the device's credential file was issued for this site "
                     "(`mamori provision inventory SITE`)"),
    IDENTITY_MISMATCH: ("the device announced itself with an id, maker or model that is not "
                        "the one in its certificate",
                        "load the device's own credential file (not another device's)"),
    CREDENTIAL_REVOKED: ("this device's credentials were revoked",
                         "issue new credentials with a new id (`mamori provision device`)"),
    MODEL_NOT_ALLOWED: ("the gateway's allowlist does not include this device's model",
                        "allow the model (`mamori provision allow`) and reinstall the "
                        "gateway's bundle, or run `mamori commission` again"),
    FIRMWARE_TOO_OLD: ("the device's firmware is older than the minimum the site allows",
                       "update the device's firmware"),
    TICKET_REQUIRED: ("the gateway requires a one-time installation ticket for a new device",
                      "issue one (`mamori provision install-secret`) and start the device "
                      "with --ticket FILE"),
    TICKET_INVALID: ("the installation ticket or its secret was not accepted (another "
                     "device's or gateway's ticket, or a mistyped secret)",
                     "check the ticket is for this device and gateway and type the secret "
                     "again"),
    TICKET_EXPIRED: ("the installation ticket has expired",
                     "issue a new one (`mamori provision install-secret`)"),
    TICKET_USED: ("the installation ticket was already used",
                  "issue a new one if the device was reset (`mamori provision install-secret`)"),
    GATEWAY_POLICY: ("the gateway refuses new devices until its own configuration is fixed",
                     "check `mamori-gateway status` on the gateway: it names the broken file"),
    BUSY: ("the gateway has reached its session limit", "retry later; tell the installer"),
    TLS_POLICY: ("the device negotiated an older TLS version than its model is allowed "
                 "(TLS 1.3 unless the allowlist declares the model's stack constrained)",
                 "update the device's TLS stack, or have the site declare the model "
                 "(`mamori provision allow … --constrained-stack`) and reinstall the bundle"),
}


def code_of(exc: object) -> str:
    """The refusal code for an admission error (NOT_AUTHORISED when it names none)."""
    code = getattr(exc, "refusal", "")
    if code in CODES:
        return code
    if isinstance(exc, ConfigError):
        return GATEWAY_POLICY
    if isinstance(exc, PolicyError):
        return MODEL_NOT_ALLOWED
    return NOT_AUTHORISED


def refusal_message(code: str) -> dict:
    """The frame a gateway sends to a device it refuses."""
    return {"type": "refused", "reason": "authentication failed",
            "code": code if code in CODES else NOT_AUTHORISED}


def explain(code: object) -> str:
    """What the installer reads: what happened, then what to do."""
    what, todo = CODES.get(code, CODES[NOT_AUTHORISED]) if isinstance(code, str) \
        else CODES[NOT_AUTHORISED]
    return what + " (" + todo + ")"


def coded(exc: Exception, code: str) -> Exception:
    """Tag an admission error with its refusal code; returns the same exception."""
    exc.refusal = code  # type: ignore[attr-defined]
    return exc
