"""Platform update requests (``mamori/v1/<gw>/update_req``): shape and signature check (portable).

A request makes the gateway install software, so it is always signed with the site's command key
(Ed25519, the key of ★★★ commands) under its own signing context, so a command signature can
never pass as an update request or the other way round::

    {"v": 1, "id": "u-…", "gateway": "gw-1", "board": "rpi4", "url": "https://…",
     "min_version": "1.4", "nonce": "<16..64 chars>", "expires": 1760000000,
     "requested_by": "release-bot", "sig": "<base64 Ed25519>"}

Refusals raise ``CommandRefused`` with the same stable reason codes as commands (plus
``wrong-board``); replays are caught by the same persisted nonce cache.
"""

import binascii

from firmware.core.command_auth import CommandRefused, ReplayCache, check_expires, valid_token
from firmware.core.update.version import parse_version

SIGNING_CONTEXT = b"mamori-update-request/v1\n"
REQUEST_VERSION = 1
MAX_URL = 512
_KNOWN = ("v", "id", "gateway", "board", "url", "min_version", "nonce", "expires",
          "requested_by", "sig")


def signing_payload(req: dict) -> bytes:
    """The exact bytes the platform signs (fixed order, newline separated)."""
    parts = [req["id"], req["gateway"], req["board"], req["url"], req.get("min_version", ""),
             req["nonce"], str(int(req["expires"])), req.get("requested_by", "")]
    return SIGNING_CONTEXT + "\n".join(parts).encode()


def _url_ok(url: object) -> bool:
    if not isinstance(url, str) or not 8 < len(url) <= MAX_URL:
        return False
    if not (url.startswith("https://") or url.startswith("http://")):
        return False
    for ch in url:
        if ord(ch) <= 32 or ord(ch) >= 127:
            return False
    return True


def parse_request(raw: object) -> dict:
    """Validate a request's shape; a normalised copy or CommandRefused('malformed')."""
    if not isinstance(raw, dict):
        raise CommandRefused("malformed", "update request is not a JSON object")
    if raw.get("v") != REQUEST_VERSION:
        raise CommandRefused("malformed", "unsupported update request version")
    for name in raw:
        if name not in _KNOWN:
            raise CommandRefused("malformed", "unknown field %r" % str(name)[:40])
    out: dict = {"v": REQUEST_VERSION}
    for name in ("id", "gateway", "board", "nonce"):
        value = raw.get(name)
        if not valid_token(value, 16 if name == "nonce" else 1):
            raise CommandRefused("malformed", "field '%s' missing or invalid" % name)
        out[name] = value
    who = raw.get("requested_by", "")
    if who != "" and not valid_token(who):
        raise CommandRefused("malformed", "field 'requested_by' is invalid")
    out["requested_by"] = who
    if not _url_ok(raw.get("url")):
        raise CommandRefused("malformed", "field 'url' must be an http(s) URL")
    out["url"] = raw["url"]
    minv = raw.get("min_version", "") or ""
    if minv:
        try:
            parse_version(minv)
        except Exception:
            raise CommandRefused("malformed", "field 'min_version' is not a version")
    out["min_version"] = minv
    out["expires"] = check_expires(raw.get("expires"))
    sig = raw.get("sig")
    if not sig:
        raise CommandRefused("unsigned", "update requests must carry the platform's signature",
                             "sign with the site's command key (`mamori push --site DIR`)")
    if not isinstance(sig, str) or len(sig) > 256:
        raise CommandRefused("malformed", "field 'sig' must be base64 text")
    try:
        out["sig"] = binascii.a2b_base64(sig.encode())
    except Exception:
        raise CommandRefused("malformed", "field 'sig' is not valid base64")
    return out


class UpdateRequestChecker:
    """Decide whether an update request may start an update on this gateway."""

    def __init__(self, gateway_id: str, board: str, verify: object, wall_clock: object,
                 replay: "ReplayCache | None" = None, max_ttl: float = 3600.0,
                 skew: float = 30.0) -> None:
        self.gateway_id = gateway_id
        self.board = board
        self._verify = verify
        self._wall = wall_clock
        self.replay = replay if replay is not None else ReplayCache()
        self.max_ttl = max_ttl
        self.skew = skew

    def check(self, raw: object) -> dict:
        """The verified request, or CommandRefused with the reason."""
        req = parse_request(raw)
        if req["gateway"] != self.gateway_id:
            raise CommandRefused("wrong-gateway", "update request is for another gateway")
        try:
            ok = bool(self._verify(signing_payload(req), req["sig"]))  # type: ignore[operator]
        except Exception:
            ok = False
        if not ok:
            raise CommandRefused("bad-signature", "update request signature does not verify",
                                 "sign with the site's command key")
        if req["board"] != self.board:
            raise CommandRefused("wrong-board", "update request is for board %s, this is %s"
                                 % (req["board"], self.board))
        now = self._wall()  # type: ignore[operator]
        if now > req["expires"] + self.skew:
            raise CommandRefused("expired", "update request expired %ds ago"
                                 % int(now - req["expires"]))
        if req["expires"] - now > self.max_ttl + self.skew:
            raise CommandRefused("expiry-too-far", "expiry further ahead than %ds"
                                 % int(self.max_ttl))
        self.replay.check_and_record(req["nonce"], req["expires"] + self.skew, now)
        return req
