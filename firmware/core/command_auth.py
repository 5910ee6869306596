"""Platform command envelopes: check before a remote command may touch a device (portable).

An envelope is a JSON object sent by the platform::

    {"v": 1, "id": "c-…", "gateway": "gw-1", "device": "door-1", "action": "unlock",
     "params": {}, "nonce": "<16..64 chars>", "expires": 1760000000,
     "requested_by": "operator-7", "approved_by": "supervisor-2", "sig": "<base64 Ed25519>"}

★★★ actions (``firmware.core.threestar``: the defaults ``HIGH_RISK_ACTIONS`` plus a model's own,
through the ``high_risk(device, action)`` hook) must carry the platform's signature over
``signing_payload(env)``: gateway, device, action, nonce, expiry plus the command id, who asked,
who approved and the parameters (canonical JSON, last line). A signature on any other action
is verified too. The signature check itself is passed in (``verify(payload, sig) -> bool``;
Ed25519 via ``cryptography`` on CPython) so this module stays portable. Each refusal raises
``CommandRefused`` whose ``reason`` is one stable code of ``REASONS``. Local manual operation
has priority: a remote command that differs from a recent local operation on the same device
is refused (``local-priority``).
"""

import binascii

from firmware.core.accesslog.encoding import canonical
from firmware.core.acl import AclRefused
from firmware.core.errors import CommandRefused
from firmware.core.threestar import DEFAULT_ACTIONS

HIGH_RISK_ACTIONS = DEFAULT_ACTIONS
SIGNING_CONTEXT = b"mamori-command/v2\n"  # v2: the parameters are signed too
ENVELOPE_VERSION = 1

REASONS = (
    "malformed", "wrong-gateway", "wrong-device", "unsigned", "bad-signature", "expired",
    "expiry-too-far", "replayed", "replay-cache-full", "acl", "local-priority",
    "wrong-action", "cannot-verify", "unknown-device",
)

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-"
_FIELDS = ("id", "gateway", "device", "action", "nonce", "requested_by", "approved_by")
_KNOWN = _FIELDS + ("v", "expires", "params", "sig")
_MAX_PARAMS = 16
_MAX_PARAM_STR = 256
# Unix seconds up to the year 9999: a bigger `expires` is no time at all (and 400 digits would
# overflow every float comparison with the clock).
MAX_EXPIRES = 253402300799


def valid_token(value: object, min_len: int = 1, max_len: int = 64) -> bool:
    """True for a short identifier made of letters, digits and ``._:@-``."""
    if not isinstance(value, str) or not min_len <= len(value) <= max_len:
        return False
    return all(ch in _ID_CHARS for ch in value)


def signing_payload(env: dict) -> bytes:
    """The exact bytes the platform signs (fields validated, newline-separated, fixed order)."""
    parts = []
    for name in ("id", "gateway", "device", "action", "nonce"):
        parts.append(env[name])
    parts.append(str(int(env["expires"])))
    parts.append(env.get("requested_by", ""))
    parts.append(env.get("approved_by", ""))
    # canonical JSON escapes newlines in strings, so this last line cannot forge another field
    parts.append(canonical(env.get("params") or {}).decode())
    return SIGNING_CONTEXT + "\n".join(parts).encode()


def check_expires(expires: object) -> int:
    """A command's or request's expiry: Unix seconds, a positive integer before year 10000."""
    if not isinstance(expires, int) or isinstance(expires, bool) or not \
            0 < expires <= MAX_EXPIRES:
        raise CommandRefused("malformed", "field 'expires' must be a positive integer (Unix s) "
                             "no larger than %d" % MAX_EXPIRES)
    return expires


def _scalar_ok(v: object) -> bool:
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, str):
        return len(v) <= _MAX_PARAM_STR
    if isinstance(v, int):
        return -(2 ** 63) <= v < 2 ** 63
    if isinstance(v, float):
        return v == v and v not in (float("inf"), float("-inf"))
    return False


def parse_envelope(env: object) -> dict:
    """Validate an envelope's shape and return a normalised copy; CommandRefused('malformed')."""
    if not isinstance(env, dict):
        raise CommandRefused("malformed", "command is not a JSON object")
    if env.get("v") != ENVELOPE_VERSION:
        raise CommandRefused("malformed", "unsupported envelope version",
                             "the platform must send v=%d" % ENVELOPE_VERSION)
    for name in env:
        if name not in _KNOWN:
            raise CommandRefused("malformed", "unknown field %r" % str(name)[:40])
    out: dict = {"v": ENVELOPE_VERSION}
    for name in _FIELDS:
        value = env.get(name, "")
        optional = name in ("requested_by", "approved_by")
        if optional and value == "":
            out[name] = ""
            continue
        min_len = 16 if name == "nonce" else 1
        if not valid_token(value, min_len):
            raise CommandRefused("malformed", "field '%s' missing or invalid" % name)
        out[name] = value
    out["expires"] = check_expires(env.get("expires"))
    params = env.get("params", {})
    if not isinstance(params, dict) or len(params) > _MAX_PARAMS:
        raise CommandRefused("malformed", "field 'params' must be a small object")
    for k in params:
        if not valid_token(k) or not _scalar_ok(params[k]):
            raise CommandRefused("malformed", "params must map short names to scalars "
                                 "(finite numbers, strings of at most %d characters)"
                                 % _MAX_PARAM_STR)
    out["params"] = params
    sig = env.get("sig")
    if sig is None or sig == "":
        out["sig"] = b""
    else:
        if not isinstance(sig, str) or len(sig) > 256:
            raise CommandRefused("malformed", "field 'sig' must be base64 text")
        try:
            out["sig"] = binascii.a2b_base64(sig.encode())
        except Exception:  # CPython raises binascii.Error, MicroPython a bare Exception
            raise CommandRefused("malformed", "field 'sig' is not valid base64")
    return out


class ReplayCache:
    """Nonces seen, each kept until its command's expiry; bounded, fails closed when full."""

    def __init__(self, max_entries: int = 4096, on_record: "object | None" = None) -> None:
        self.max_entries = max_entries
        self._seen: dict = {}
        self._on_record = on_record

    def __len__(self) -> int:
        return len(self._seen)

    def load(self, items: list, now: float) -> None:
        """Restore (nonce, expires) pairs persisted before a restart; expired ones are dropped."""
        for nonce, expires in items:
            if expires >= now:
                self._seen[nonce] = expires

    def purge(self, now: float) -> None:
        """Forget nonces whose command has expired (they can no longer be replayed)."""
        for nonce in [n for n in self._seen if self._seen[n] < now]:
            del self._seen[nonce]

    def check_and_record(self, nonce: str, expires: float, now: float) -> None:
        """Record a fresh nonce; raise CommandRefused on a replay or a full cache."""
        if nonce in self._seen:
            raise CommandRefused("replayed", "nonce already used",
                                 "the platform must send a new nonce for each command")
        if len(self._seen) >= self.max_entries:
            self.purge(now)
            if len(self._seen) >= self.max_entries:
                raise CommandRefused("replay-cache-full", "too many live commands",
                                     "retry when earlier commands have expired")
        self._seen[nonce] = expires
        if self._on_record is not None:
            self._on_record(nonce, expires)  # type: ignore[operator]


class LocalOperations:
    """Recent local manual operations per device; remote commands that conflict are refused."""

    def __init__(self, clock: object, window: float = 120.0) -> None:
        self._clock = clock
        self.window = window
        self._last: dict = {}

    def record(self, device: str, action: str, principal: str = "local") -> None:
        """Note a manual operation done at the device or on the local admin interface."""
        self._last[device] = (action, principal, self._clock())  # type: ignore[operator]

    def conflict(self, device: str, action: str) -> "str | None":
        """The refusal reason when ``action`` conflicts with a recent local operation, else None."""
        last = self._last.get(device)
        if last is None:
            return None
        local_action, principal, when = last
        age = self._clock() - when  # type: ignore[operator]
        if age > self.window or action == local_action:
            return None
        return "device was operated locally (%s by %s) %ds ago" % (local_action, principal,
                                                                   int(age))


class CommandAuthorizer:
    """Decide whether a platform command envelope may be executed on this gateway."""

    def __init__(self, gateway_id: str, verify: object, wall_clock: object, acl: object,
                 local_ops: "LocalOperations | None" = None,
                 replay: "ReplayCache | None" = None, max_ttl: float = 300.0,
                 skew: float = 30.0, principal: str = "platform",
                 high_risk: "object | None" = None, known: "object | None" = None) -> None:
        """``high_risk(device, action) -> bool`` says which actions need the signature
        (default: ``HIGH_RISK_ACTIONS``, whatever the device); ``known(device) -> bool``, when
        given, says which devices this gateway has (others are refused by name, not by ACL)."""
        self.gateway_id = gateway_id
        self._verify = verify
        self._wall = wall_clock
        self.acl = acl
        self.local_ops = local_ops
        self.replay = replay if replay is not None else ReplayCache()
        self.max_ttl = max_ttl
        self.skew = skew
        self.principal = principal
        self.high_risk = high_risk
        self.known = known

    def check(self, raw: object, topic_device: "str | None" = None) -> dict:
        """Return the validated command, or raise CommandRefused with the reason."""
        env = parse_envelope(raw)
        if env["gateway"] != self.gateway_id:
            raise CommandRefused("wrong-gateway", "command is addressed to another gateway")
        if topic_device is not None and env["device"] != topic_device:
            raise CommandRefused("wrong-device", "command's device does not match its topic")
        action = env["action"]
        if self._high_risk(env["device"], action) and not env["sig"]:
            raise CommandRefused("unsigned", "action '%s' needs the platform's signature" % action)
        if env["sig"] and not self._signature_ok(env):
            raise CommandRefused("bad-signature", "signature does not verify",
                                 "sign with the site's command key")
        now = self._wall()  # type: ignore[operator]
        if now > env["expires"] + self.skew:
            raise CommandRefused("expired", "command expired %ds ago" % int(now - env["expires"]))
        if env["expires"] - now > self.max_ttl + self.skew:
            raise CommandRefused("expiry-too-far", "expiry further ahead than %ds"
                                 % int(self.max_ttl))
        self.replay.check_and_record(env["nonce"], env["expires"] + self.skew, now)
        if self.known is not None and not self.known(env["device"]):  # type: ignore[operator]
            raise CommandRefused("unknown-device", "no device '%s' on this gateway"
                                 % env["device"], "check the device id (`mamori platform "
                                 "watch` shows the gateway's devices)")
        try:
            self.acl.check(self.principal, env["device"], action)  # type: ignore[attr-defined]
        except AclRefused as exc:
            raise CommandRefused("acl", exc.message, exc.hint)
        if self.local_ops is not None:
            why = self.local_ops.conflict(env["device"], action)
            if why is not None:
                raise CommandRefused("local-priority", why,
                                     "local manual operation has priority; retry later")
        return env

    def _high_risk(self, device: str, action: str) -> bool:
        if action in HIGH_RISK_ACTIONS:
            return True
        if self.high_risk is None:
            return False
        try:
            return bool(self.high_risk(device, action))  # type: ignore[operator]
        except Exception:  # a failing lookup must not waive the signature
            return True

    def _signature_ok(self, env: dict) -> bool:
        try:
            return bool(self._verify(signing_payload(env), env["sig"]))  # type: ignore[operator]
        except Exception:  # any failure inside the verifier means "not verified"
            return False
