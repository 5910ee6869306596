"""A provisioning site: its CAs, CRL, platform keys, model allowlist, issued records, inventory.

Layout of a site directory (private keys 0600, everything else 0644)::

    site.json                        name, level, site id, creation
    offline/root-ca.key              service root CA key: move it offline after init-site
    ca/root-ca.pem                   service root CA certificate (the trust anchor)
    ca/site-ca.pem, ca/site-ca.key   site issuing CA (signs certificates, CRL, allowlist, bundles)
    ca/crl.pem, ca/revoked.json      revocation list (PEM CRL, numbered, CRL_DAYS valid) and its
                                     source
    allowlist.json                   signed model allowlist for the site's level
    platform/ca.pem                  CA chain the gateway pins for the platform (site CA + root)
    platform/server.pem, server.key  broker/platform TLS server certificate (localhost, 127.0.0.1)
    platform/client.pem, client.key  platform TLS client certificate (platform -> broker):
                                     commands and requests (CN mamori-platform-client)
    platform/watch.pem, watch.key    the platform's read-only monitoring identity (CN
                                     mamori-platform-watch): the broker binds each MQTT client
                                     id to its certificate, so each identity holds one session
    platform/command-signing.key     platform command-signing key (Ed25519, PKCS#8 PEM)
    platform/command-signing.pub     its public key (pinned in every gateway bundle)
    issued/<id>.json                 public record of each issued gateway/device (no secrets)
    inventory.jsonl                  append-only: who was issued what, when, by whom
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common import crl as crlmod
from firmware.core import lanpolicy, threestar
from firmware.core.errors import ConfigError, IntegrityError, PolicyError, StateError
from firmware.core.ids import ID_HINT, valid_id
from provisioning import pki
from provisioning.files import read_json, write_file, write_json

LEVELS = (2, 3)
TRANSPORTS = ("ip", "ble", "zigbee")
RESERVED_PREFIX = "mamori-platform"
PLATFORM_HOSTS = ["localhost"]
PLATFORM_IPS = ["127.0.0.1", "::1"]
# The CRL's lifetime, and how old it may get before the platform re-signs it (well inside).
CRL_DAYS = 30
CRL_REFRESH_DAYS = 7
# Platform client identities: role -> (certificate CN, the broker's MQTT user name)
PLATFORM_CLIENTS = {"client": "mamori-platform-client", "watch": "mamori-platform-watch"}


def check_id(value: str, what: str = "id") -> str:
    """Refuse ids that could escape a directory or confuse a certificate subject."""
    if not valid_id(value):
        raise ConfigError("%s %r is not valid" % (what, value), hint=ID_HINT)
    if value.lower().startswith(RESERVED_PREFIX):
        # an id becomes a certificate CN, which brokers map to the MQTT user name
        raise ConfigError("%s %r is reserved for the platform's own identities" % (what, value),
                          hint="choose a name that does not start with " + RESERVED_PREFIX)
    return value


def operator() -> str:
    """Who is running the tool (recorded in the inventory)."""
    try:
        return os.environ.get("MAMORI_OPERATOR") or getpass.getuser()
    except Exception:
        return "unknown"


class Site:
    """An initialised site directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        meta = self.root / "site.json"
        if not meta.is_file():
            raise StateError("%s is not a provisioning site" % self.root,
                             "create one with `mamori provision init-site DIR --level 2 "
                             "--name NAME`")
        self.meta: dict = read_json(meta)
        self.name: str = self.meta["name"]
        self.level: int = int(self.meta["level"])
        self.site_id: str = self.meta["site_id"]

    # --- creation -------------------------------------------------------------------------------
    @classmethod
    def init(cls, root: Path, level: int, name: str) -> Site:
        """Create the site's CAs, CRL, platform keys and an empty signed allowlist."""
        root = Path(root)
        if level not in LEVELS:
            raise ConfigError("level must be 2 or 3, got %r" % level)
        if not name.strip():
            raise ConfigError("site name must not be empty")
        if (root / "site.json").exists():
            raise StateError("%s is already a site" % root, "use another directory")
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        site_id = "site-" + secrets.token_hex(6)
        org = "Mamori site " + name
        root_key = pki.new_key()
        root_cert = pki.make_ca("Mamori service root CA (%s)" % site_id, org, root_key,
                                days=7300, path_length=1)
        ca_key = pki.new_key()
        ca_cert = pki.make_ca("Mamori site CA %s" % site_id, org, ca_key, root_key, root_cert,
                              days=3650, path_length=0)
        write_file(root / "offline/root-ca.key", pki.key_pem(root_key), secret=True)
        write_file(root / "ca/root-ca.pem", pki.cert_pem(root_cert).encode(), secret=False)
        write_file(root / "ca/site-ca.pem", pki.cert_pem(ca_cert).encode(), secret=False)
        write_file(root / "ca/site-ca.key", pki.key_pem(ca_key), secret=True)
        meta = {"format": "mamori-site/1", "name": name, "level": level, "site_id": site_id,
                "created": pki.now().isoformat(), "created_by": operator(),
                "root_fingerprint": pki.fingerprint(root_cert)}
        write_json(root / "site.json", meta, secret=False)
        site = cls(root)
        write_json(root / "ca/revoked.json", [], secret=False)
        site.write_crl()
        site.write_allowlist([])
        site._init_platform(ca_key, ca_cert, org)
        site.record("init-site", site_id, kind="site", level=level, name=name,
                    root_fingerprint=meta["root_fingerprint"])
        return site

    def _init_platform(self, ca_key: pki.PrivateKey, ca_cert: x509.Certificate,
                       org: str) -> None:
        p = self.root / "platform"
        chain = pki.cert_pem(ca_cert) + self.root_pem()
        write_file(p / "ca.pem", chain.encode(), secret=False)
        sign = pki.ed25519_new()
        write_file(p / "command-signing.key", pki.key_pem(sign), secret=True)
        write_file(p / "command-signing.pub", pki.public_pem(sign.public_key()).encode(),
                   secret=False)
        # HPKE recipient key: gateways encrypt their access-log key escrow to the platform.
        escrow = x25519.X25519PrivateKey.generate()
        write_file(p / "log-escrow.key", pki.key_pem(escrow), secret=True)
        write_file(p / "log-escrow.pub", pki.public_pem(escrow.public_key()).encode(),
                   secret=False)
        for role, server, client in (("server", True, False), ("client", False, True),
                                     ("watch", False, True)):
            self.issue_platform(role, server, client, ca_key, ca_cert, org)

    def issue_platform(self, role: str, server: bool, client: bool,
                       ca_key: pki.PrivateKey | None = None,
                       ca_cert: x509.Certificate | None = None, org: str = "") -> Path:
        """Issue one platform TLS identity (CN ``mamori-platform-<role>``); its certificate."""
        ca_key = ca_key or self.ca_key()
        ca_cert = ca_cert or self.ca_cert()
        p = self.root / "platform"
        key = pki.new_key()
        cert = pki.issue_leaf(
            ca_key, ca_cert, key.public_key(), "mamori-platform-" + role,
            org or "Mamori site " + self.name, "platform", ["urn:mamori:platform:" + role],
            server=server, client=client, days=825,
            dns=PLATFORM_HOSTS if server else None, ips=PLATFORM_IPS if server else None,
        )
        write_file(p / (role + ".key"), pki.key_pem(key), secret=True)
        write_file(p / (role + ".pem"), (pki.cert_pem(cert) + pki.cert_pem(ca_cert)).encode(),
                   secret=False)
        self.record("issue-platform-" + role, "platform-" + role, kind="platform",
                    serial=str(cert.serial_number), fingerprint=pki.fingerprint(cert))
        return p / (role + ".pem")

    # --- CA material ----------------------------------------------------------------------------
    def ca_cert(self) -> x509.Certificate:
        """The site issuing CA certificate."""
        return pki.load_cert((self.root / "ca/site-ca.pem").read_bytes())

    def ca_key(self) -> pki.PrivateKey:
        """The site issuing CA key."""
        return pki.load_ec_key((self.root / "ca/site-ca.key").read_bytes())

    def root_pem(self) -> str:
        """The service root CA certificate, PEM."""
        return (self.root / "ca/root-ca.pem").read_text()

    def ca_pem(self) -> str:
        """The site CA certificate, PEM."""
        return (self.root / "ca/site-ca.pem").read_text()

    def crl_pem(self) -> str:
        """The current CRL, PEM."""
        return (self.root / "ca/crl.pem").read_text()

    def crl(self) -> crlmod.CrlInfo:
        """The current CRL, verified against the site CA."""
        return crlmod.verified((self.root / "ca/crl.pem").read_bytes(), self.ca_cert())

    def write_crl(self, days: float = CRL_DAYS) -> int:
        """Re-sign the CRL from ca/revoked.json with the next CRL number; return that number."""
        revoked = read_json(self.root / "ca/revoked.json")
        path = self.root / "ca/crl.pem"
        number = crlmod.number_of(crlmod.load(path.read_bytes())) + 1 if path.is_file() else 1
        crl = pki.make_crl(self.ca_key(), self.ca_cert(),
                           [(int(r["serial"]), r["at"]) for r in revoked], days, number)
        from cryptography.hazmat.primitives import serialization
        write_file(path, crl.public_bytes(serialization.Encoding.PEM), secret=False)
        self.record("sign-crl", "crl", kind="crl", number=number, revoked=len(revoked),
                    next_update=crl.next_update_utc.isoformat() if crl.next_update_utc else "")
        return number

    # --- allowlist ------------------------------------------------------------------------------
    def write_allowlist(self, entries: list[dict]) -> dict:
        """Sign and store the allowlist for this site's level."""
        payload = {"site_id": self.site_id, "level": self.level, "entries": entries,
                   "issued": pki.now().isoformat()}
        doc = pki.sign_doc(self.ca_key(), "mamori-allowlist", payload)
        write_json(self.root / "allowlist.json", doc, secret=False)
        return doc

    def allowlist_doc(self) -> dict:
        """The signed allowlist document."""
        return dict(read_json(self.root / "allowlist.json"))

    def allowlist(self) -> list[dict]:
        """The verified allowlist entries."""
        payload = pki.verify_doc(self.ca_cert(), self.allowlist_doc(), "mamori-allowlist")
        if payload.get("level") != self.level or payload.get("site_id") != self.site_id:
            raise IntegrityError("allowlist belongs to another site or level")
        return list(payload["entries"])

    def allow(self, maker: str, model: str, transport: str, min_firmware: str = "0",
              three_star: list[str] | None = None,
              constrained_stack: bool | None = None) -> dict:
        """Add (or extend) an allowlist entry and re-sign the list.

        `three_star`: actions of this model that are ★★★ besides unlock and disarm (e.g. a
        garage door's ``open``); signed into the entry, copied into its devices' credentials.
        `constrained_stack`: the model's TLS stack offers TLS 1.2 only (a microcontroller): its
        devices may use TLS 1.2 with ECDHE + AEAD suites on the LAN (``firmware.core.lanpolicy``);
        None keeps what the entry says.
        """
        if transport not in TRANSPORTS:
            raise ConfigError("transport must be one of ip, ble, zigbee")
        if not maker.strip() or not model.strip():
            raise ConfigError("maker and model must not be empty")
        try:
            extra = threestar.parse_actions(three_star)
        except ValueError as exc:
            raise ConfigError(str(exc), field="--three-star")
        entries = self.allowlist()
        for e in entries:
            if e["maker"] == maker and e["model"] == model:
                if transport not in e["transports"]:
                    e["transports"].append(transport)
                e["min_firmware"] = min_firmware
                if three_star is not None:
                    e[threestar.ENTRY_KEY] = extra
                if constrained_stack is not None:
                    e[lanpolicy.ENTRY_KEY] = constrained_stack
                    if not constrained_stack:
                        del e[lanpolicy.ENTRY_KEY]
                entry = e
                break
        else:
            entry = {"maker": maker, "model": model, "transports": [transport],
                     "min_firmware": min_firmware}
            if extra:
                entry[threestar.ENTRY_KEY] = extra
            if constrained_stack:
                entry[lanpolicy.ENTRY_KEY] = True
            entries.append(entry)
        self.write_allowlist(entries)
        self.record("allow", "%s/%s" % (maker, model), kind="model", transport=transport,
                    min_firmware=min_firmware,
                    tls_floor=lanpolicy.floor_for(entry))
        return entry

    def check_allowed(self, maker: str, model: str, transport: str) -> dict:
        """The allowlist entry for this model and transport, or PolicyError."""
        for e in self.allowlist():
            if e["maker"] == maker and e["model"] == model and transport in e["transports"]:
                return e
        raise PolicyError(
            "model %s/%s over %s is not on the level-%d allowlist of this site"
            % (maker, model, transport, self.level),
            "add it with `mamori provision allow DIR --maker MAKER --model MODEL --transport %s`"
            % transport,
        )

    # --- issued records and inventory -----------------------------------------------------------
    def issued_path(self, ident: str) -> Path:
        """Where the public record of an issued identity lives."""
        return self.root / "issued" / (check_id(ident) + ".json")

    def issued(self, ident: str) -> dict:
        """The public record of an issued gateway or device."""
        path = self.issued_path(ident)
        if not path.is_file():
            raise StateError("nothing was issued to %r on this site" % ident,
                             "see `mamori provision inventory DIR`")
        return dict(read_json(path))

    def save_issued(self, record: dict) -> None:
        """Store a public record (never contains a secret); refuses duplicates."""
        path = self.issued_path(record["id"])
        if path.exists():
            raise StateError("an identity %r was already issued on this site" % record["id"],
                             "ids are unique: pick another id (revoke the old one if replaced)")
        write_json(path, record, secret=False)

    def gateways(self) -> list[dict]:
        """Records of every issued gateway."""
        out = []
        for p in sorted((self.root / "issued").glob("*.json")):
            r = read_json(p)
            if r.get("kind") == "gateway":
                out.append(r)
        return out

    def record(self, action: str, subject: str, **fields: Any) -> None:
        """Append one inventory line (who, what, when, by whom)."""
        line = {"at": pki.now().isoformat(), "by": operator(), "action": action,
                "subject": subject, "site_id": self.site_id}
        line.update(fields)
        with open(self.root / "inventory.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def inventory(self) -> list[dict]:
        """Every inventory line, oldest first."""
        path = self.root / "inventory.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def revoke(self, ident: str, reason: str = "unspecified") -> dict:
        """Revoke every serial issued to an identity and re-sign the CRL."""
        rec = self.issued(ident)
        if rec.get("revoked"):
            raise StateError("%r is already revoked" % ident)
        revoked = read_json(self.root / "ca/revoked.json")
        at = pki.now().replace(microsecond=0).isoformat()
        for serial in rec.get("serials", []):
            revoked.append({"serial": str(serial), "at": at, "id": ident})
        write_json(self.root / "ca/revoked.json", revoked, secret=False)
        rec["crl_number"] = self.write_crl()
        rec["revoked"] = at
        write_json(self.issued_path(ident), rec, secret=False)
        self.record("revoke", ident, kind=rec.get("kind", ""), reason=reason,
                    serials=rec.get("serials", []))
        return rec


def not_after_iso(days: int) -> str:
    """ISO time `days` from now."""
    return (pki.now() + datetime.timedelta(days=days)).replace(microsecond=0).isoformat()
