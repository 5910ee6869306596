"""A gateway reached over its local admin API (`mamori commission --admin URL`).

The board is on the house LAN, its state directory out of reach. Its installation bundle
reaches it as a file (injected into the image by `mamori flash image --bundle`, or copied onto
it and given to `mamori-gateway run --bundle`); the admin API then proves the board carries
that identity and does the rest: the first-use credential change, the device states and the
live commissioning self-test. TLS is verified against the site's own CA chain and the peer must
carry the gateway certificate of the gateway being commissioned (its URI names the gateway id):
a LAN address is never in a certificate, so the identity, not the host name, is what is pinned.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.parse
from pathlib import Path
from typing import Any

from firmware.core.errors import AuthError, ConfigError, MamoriError, PolicyError, StateError

TIMEOUT_S = 20.0
SELFTEST_TIMEOUT_S = 600.0
POLL_S = 1.0


class AdminError(MamoriError):
    """The gateway's admin API answered with an error."""

    code = "admin-api"


class AdminTarget:
    """A gateway whose admin API is reachable at a URL."""

    def __init__(self, url: str, board: str) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme != "https" or not u.hostname or u.path not in ("", "/") or u.query:
            raise ConfigError("--admin must be https://HOST:PORT, not %r" % url,
                              hint="the gateway's admin API (port 8443 on a board)")
        self.url = url
        self.host, self.port = u.hostname, u.port or 8443
        self.board = board
        self.bundle: Path | None = None
        self.gateway = ""
        self.credential: Path | None = None
        self._cookie = ""
        self._csrf = ""

    # -- plumbing ------------------------------------------------------------------------
    def local_state_dir(self) -> Path | None:
        """The gateway's state directory when it is on this machine, else None."""
        return None  # the board is remote: commands run on it name its own state directory

    def describe(self) -> str:
        """What the summary calls it."""
        return "admin API %s" % self.url

    def start_hint(self) -> str:
        """How the installer gets the gateway to answer."""
        return ("power on the board whose image carries the bundle (`mamori flash image "
                "--bundle FILE`), on the LAN of this PC, and check %s" % self.url)

    def _context(self) -> ssl.SSLContext:
        if self.bundle is None:
            raise StateError("the gateway's bundle is not known yet")
        chain = json.loads(self.bundle.read_text())["chain"]
        ctx = ssl.create_default_context(cadata=chain["site_ca"] + chain["root_ca"])
        ctx.check_hostname = False  # the identity is checked below, by its gateway URI
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _connect(self) -> http.client.HTTPSConnection:
        from firmware.common.certs import gateway_id_of

        conn = http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT_S,
                                           context=self._context())
        try:
            conn.connect()
        except ssl.SSLError as exc:
            raise AuthError("the board at %s is not a gateway of this site (%s)"
                            % (self.url, exc.reason))
        except OSError as exc:
            raise StateError("cannot reach %s: %s" % (self.url, exc.strerror or exc))
        sock = conn.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        peer = gateway_id_of(der) if der else ""
        if peer != self.gateway:
            conn.close()
            raise AuthError("the board at %s is gateway %r, not %r" % (self.url, peer,
                                                                      self.gateway))
        return conn

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request; (status, decoded JSON body or None)."""
        headers = {"Host": "%s:%d" % (self.host, self.port), "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._cookie:
            headers["Cookie"] = self._cookie
        if self._csrf and method != "GET":
            headers["X-CSRF-Token"] = self._csrf
        conn = self._connect()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(8 * 1024 * 1024)
            cookie = resp.getheader("Set-Cookie") or ""
        except (OSError, http.client.HTTPException) as exc:
            raise StateError("the admin API at %s did not answer: %s" % (self.url, exc))
        finally:
            conn.close()
        if cookie:
            self._cookie = cookie.split(";", 1)[0]
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            raise AdminError("the admin API answered something that is not JSON")
        return resp.status, doc

    def _login(self) -> None:
        from host_tools.commission.credential import read_secret

        if self._csrf:
            return
        if self.credential is None:
            raise StateError("no admin credential yet (the first-use change comes first)")
        status, doc = self.call("POST", "/api/login", {"account": "installer",
                                                       "password": read_secret(self.credential)})
        if status != 200:
            raise AuthError("the gateway refused the installer's login: %s"
                            % (doc or {}).get("message", status))
        self._csrf = str(doc["csrf_token"])

    # -- what the flow asks ----------------------------------------------------------------
    def attach(self, bundle: Path) -> None:
        """The bundle being installed: its CA chain verifies the board, its id is pinned."""
        from host_tools.commission.issue import bundle_gateway

        self.bundle = Path(bundle).resolve()
        self.gateway = str(bundle_gateway(self.bundle)["gateway_id"])
        if self.credential is None:
            self.credential = self.bundle.with_name(self.bundle.name + ".admin-credential")

    def install(self, bundle: Path) -> str:
        """The bundle reaches the board as a file: check the board carries that identity."""
        self.attach(bundle)
        try:
            self._connect().close()
        except MamoriError as exc:
            raise StateError("%s: the board does not carry gateway %s yet" % (exc, self.gateway),
                             "put the bundle %s on the board (`mamori flash image --board %s "
                             "--bundle %s --out IMAGE`, or copy it and start `mamori-gateway "
                             "run --bundle FILE`), then run this command again"
                             % (self.bundle, self.board, self.bundle))
        return "the board at %s carries gateway %s" % (self.url, self.gateway)

    def status(self) -> dict[str, Any] | None:
        """What the flow needs of the status: the gateway's id, LAN endpoint and devices."""
        if self.bundle is None:
            return None
        try:
            self._connect().close()
        except MamoriError:
            return None
        doc: dict[str, Any] = {"gateway": {"id": self.gateway, "running": True},
                               "lan": {"host": self.host, "port": None}}
        try:
            self._login()
        except (AuthError, StateError):
            return doc  # before the first-use change: the TLS identity is what we know
        status, body = self.call("GET", "/api/devices")
        if status == 401:
            self._csrf = ""
            return doc
        if status != 200 or not isinstance(body, dict):
            return doc
        doc["lan"] = body.get("lan") or doc["lan"]
        doc["devices"] = body.get("devices") or []
        doc["events"] = [dict(e, kind="auth.refused") for e in body.get("refused") or []]
        return doc

    def change_credential(self, credential: Path, gateway: str) -> str:
        """The first-use change over the API (the only thing an initial credential may do)."""
        from host_tools.commission.credential import first_use_change

        self.credential = credential

        def change(old: str, new: str) -> None:
            status, doc = self.call("POST", "/api/credential/initial",
                                    {"account": "installer", "old": old, "new": new})
            if status == 401:
                raise AuthError("wrong admin credential")
            if status == 403:
                raise PolicyError((doc or {}).get("message", "refused"))
            if status not in (200, 204):
                raise AdminError("credential change refused: %s" % (doc or {}).get(
                    "message", status))

        def current(secret: str) -> bool:
            status, doc = self.call("POST", "/api/login", {"account": "installer",
                                                           "password": secret})
            if status == 200:
                self._csrf = str(doc["csrf_token"])
            return status == 200

        return first_use_change(credential, gateway, change, current)

    def commission(self, level: int) -> dict[str, Any]:
        """Run the live commissioning self-test on the gateway; wait for its signed report."""
        from firmware.gateway.selftest.commissioning import CommissioningRefused

        self._login()
        status, doc = self.call("POST", "/api/commissioning", {"level": level})
        if status not in (200, 202):
            raise AdminError("the gateway did not start its self-test: %s"
                             % (doc or {}).get("message", status))
        deadline = time.monotonic() + SELFTEST_TIMEOUT_S
        while time.monotonic() < deadline:
            time.sleep(POLL_S)
            status, doc = self.call("GET", "/api/commissioning")
            state = (doc or {}).get("state")
            if state == "done":
                return {"envelope": doc["envelope"], "entry": doc["entry"],
                        "public_key": str(doc["public_key"]).encode()}
            if state == "refused" and isinstance(doc.get("report"), dict):
                raise CommissioningRefused(doc["report"])
            if state != "running":
                raise AdminError("the self-test failed on the gateway: %s"
                                 % (doc or {}).get("message", state))
        raise StateError("the gateway's self-test did not finish in %.0f s" % SELFTEST_TIMEOUT_S)
