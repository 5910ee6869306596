"""Request/response model of the admin API: safe JSON output, security headers, path checks."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

MAX_BODY = 16 * 1024
MAX_TARGET = 2048
COOKIE = "__Host-mamori-session"

# Sent on every response, errors included (IPA "How to Secure Your Web Site", SR3-H-3).
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Resource-Policy": "same-origin",
}
REQUIRED_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
                    "Referrer-Policy", "Strict-Transport-Security", "Cache-Control")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Request:
    """One parsed request as the app sees it."""

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes = b"",
                 addr: str = "127.0.0.1") -> None:
        self.method = method.upper()
        self.target = target
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.addr = addr

    def header(self, name: str) -> str:
        """A header value ('' when absent)."""
        return self.headers.get(name.lower(), "")

    def cookie(self, name: str) -> str:
        """A cookie value from the Cookie header ('' when absent)."""
        for part in self.header("cookie").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return v
        return ""


class Response:
    """Status, headers and a body; JSON by default."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                 raw: bytes | None = None, content_type: str = "application/json") -> None:
        self.status = status
        self.headers = dict(SECURITY_HEADERS)
        self.cookies: list[str] = []
        if raw is None:
            raw = b"" if body is None and status == 204 else encode_json(body)
        self.body = raw
        if raw or status != 204:
            self.headers["Content-Type"] = content_type + "; charset=utf-8"
        self.headers.update(headers or {})


def encode_json(data: Any) -> bytes:
    """JSON that is also inert if a browser ever treats it as HTML (<, >, & escaped)."""
    text = json.dumps(data, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def error(status: int, code: str, message: str, **extra: Any) -> Response:
    """An error response (message is fixed text, never echoed input)."""
    body = {"error": code, "message": message}
    body.update(extra)
    return Response(status, body)


def split_path(target: str) -> list[str] | None:
    """Path segments of a request target, or None when it is malformed or tries to escape.

    Refused: over-long targets, backslashes, NUL/control characters, encoded slashes or dots,
    empty, ``.`` or ``..`` segments.
    """
    if len(target) > MAX_TARGET or not target.startswith("/"):
        return None
    path = target.split("?", 1)[0].split("#", 1)[0]
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%2e" in lowered or "%00" in lowered:
        return None
    try:
        decoded = unquote(path, errors="strict") if "%" in path else path
    except UnicodeDecodeError:
        return None
    if "\\" in decoded or any(ord(c) < 32 or ord(c) == 127 for c in decoded):
        return None
    if decoded == "/":
        return []
    parts = decoded[1:].split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return parts


def valid_segment(value: str) -> bool:
    """Whether a path parameter is a plain name (letters, digits, . _ -; no leading dot)."""
    return bool(_SEGMENT.match(value)) and ".." not in value
