"""Every store in the state directory, in one place: which can hold personal data, how each is
protected at rest, and what an ownership transfer and the resale reset do to it.

``tests/admin/test_personal_stores.py`` checks this list against the code (each entry's
``source`` constant names the same path, every state-dir path constant is listed) and
``tests/admin/test_canary_image.py`` against a real gateway's state directory (every file it
wrote is listed here). The resale reset destroys the personal stores first, in this
order, then everything else but the firmware; the ownership transfer runs each personal
store's transfer step.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Store:
    """One file or folder (trailing ``/``) of the state directory; ``*`` matches a name part."""

    path: str
    holds: str
    at_rest: str
    transfer: str
    source: str = ""  # "module:CONSTANT" whose value is ``path`` (or its folder)

    def matches(self, rel: str) -> bool:
        """Whether a state-dir relative file path belongs to this store."""
        if self.path.endswith("/"):
            return rel.startswith(self.path) or rel == self.path[:-1]
        return fnmatch.fnmatchcase(rel, self.path)


PERSONAL: tuple[Store, ...] = (
    Store("personal/data.bin", "the owner's personal data (name, contact, address, notes)",
          "AES-256-GCM under its own data key (key store, wrapped by the KEK)",
          "erased: data key destroyed, then the ciphertext overwritten",
          "firmware.gateway.admin.personal:DATA_FILE"),
    Store("admin/admin.db*", "account names, credentials (scrypt), session addresses, "
          "settings the owner set (device name), login throttling keys, who opened windows",
          "names and throttle keys AES-SIV, other personal fields AES-GCM (admin-db-fields key); "
          "secure_delete; journal and freed blocks hold ciphertext only",
          "old owners' accounts, sessions, throttle rows, maintenance accounts they made or "
          "that carry their name, windows they opened and settings they set are removed; the "
          "field key is rotated (what a journal or freed block kept becomes unreadable)",
          "firmware.gateway.admin.db:DB_FILE"),
    Store("admin/diagnostics/", "status snapshots taken by operators",
          "counts and states only (no names)", "removed",
          "firmware.gateway.admin.snapshots:DIAG_DIR"),
    Store("wan/outbox.db*", "events waiting for the platform: principals, requesters, "
          "approvers, reasons", "payloads AES-GCM (wan-outbox-fields key), secure_delete; WAL "
          "holds ciphertext only", "backlog re-sealed under a new key (the platform still "
          "receives it)", "firmware.gateway.wan.service:QUEUE_FILE"),
    Store("accesslog/", "every operation with its principal, target and reason",
          "records AES-256-GCM under the log data key (wrapped by the KEK)",
          "kept (the service's audit trail; the old owner cannot read it on the gateway)",
          "firmware.common.accesslog.files:LOG_DIR"),
    Store("run/status.json", "recent events and device states for `mamori-gateway status`",
          "minimised: no principal, reason, parameter or non-device target "
          "(runtime.status_event)", "rewritten every second without personal fields",
          "firmware.gateway.runtime.gateway:STATUS_FILE"),
)

OTHER: tuple[Store, ...] = (
    Store("resale.json", "resale reset progress", "no personal data", "-",
          "firmware.gateway.runtime.resalemarker:MARKER"),
    Store("wan/broker.json", "where the platform broker was last reached", "no household data",
          "-", "firmware.gateway.wan.service:BROKER_FILE"),
    Store("wan/conn-token", "this gateway's broker connection token (takeover detection)",
          "random token, no household data", "-", "firmware.gateway.wan.service:TOKEN_FILE"),
    Store("lan/endpoint.json", "the LAN port devices were set up for (kept stable)",
          "no household data", "-", "firmware.gateway.runtime.endpoint:FILE"),
    Store("lan/admin-endpoint.json", "the admin API's port (kept stable)", "no household data",
          "-", "firmware.gateway.runtime.endpoint:ADMIN_FILE"),
    Store("devices/known.json", "devices admitted before: transport, interval, level, maker, "
          "model (listed offline after a restart)", "device ids and models, no household data",
          "-", "firmware.gateway.runtime.known:FILE"),
    Store("keys/", "the device KEK and the key store (secrets, wrapped by the KEK)",
          "KEK 0600 (or a secure element); entries AES-256-GCM under it", "transfer rotates the "
          "session pepper, settings MAC key and field keys",
          "firmware.gateway.identity.keystore:STORE_DIR"),
    Store("identity/", "installation: certificates, CA chain, CRL, ACL, allowlist",
          "no household data", "-", "firmware.gateway.identity.install:IDENTITY"),
    Store("admin/locked.json", "installer-locked settings and their MAC", "no household data",
          "MAC key rotated", "firmware.gateway.admin.settings:MANIFEST"),
    Store("admin/credential.json", "an operator's admin credential record (USB maintenance)",
          "scrypt hash, no household data", "-", "firmware.gateway.cli.usb:CREDENTIAL_FILE"),
    Store("admin/tls/", "the admin API's self-signed certificate", "key encrypted", "-",
          "firmware.gateway.admin.tlsctx:SELF_CERT"),
    Store("deviceinfo.json", "product and support information", "no household data", "-",
          "firmware.gateway.identity.deviceinfo:FILE"),
    Store("binding/", "devices bound by installation tickets", "device ids only", "-",
          "firmware.gateway.identity.binding:BOUND"),
    Store("policy/", "installer policies", "no household data", "-",
          "firmware.gateway.identity.binding:POLICY"),
    Store("zigbee/", "joined Zigbee devices", "device ids and addresses", "-",
          "firmware.gateway.zigbee.service:REGISTRY"),
    Store("monitor/", "LAN hosts never reported as new (installer list)", "no household data",
          "-", "firmware.gateway.monitor.wiring:ALLOW_FILE"),
    Store("usb/", "USB rules and maintenance windows (operator names, not the household's)",
          "no household data", "-", "firmware.gateway.usbguard.store:RULES_FILE"),
    Store("installation/", "signed commissioning reports", "no household data", "-",
          "firmware.gateway.selftest.commissioning:DIR"),
    Store("scan/", "local advisory file for the self-scan", "no household data", "-",
          "firmware.gateway.selftest.checks.scan:ADVISORY_FILE"),
    Store("broker/", "sim only: the demo platform broker's configuration and log",
          "no household data", "-"),
    Store("run/gateway.*", "lock and pid of the running gateway", "no data", "-",
          "firmware.gateway.runtime.gateway:LOCK_FILE"),
    Store("run/control.sock", "local control socket", "no data", "-",
          "firmware.gateway.runtime.control:SOCKET"),
    Store("update/", "firmware trust state, floors, history, staging (kept by the reset)",
          "no household data", "-", "firmware.gateway.owner.resale:KEEP"),
    Store("slots/", "sim only: firmware slots (kept by the reset)", "no household data", "-"),
)


def personal_store(rel: str) -> Store | None:
    """The personal store a state-dir relative path belongs to, if any."""
    return next((s for s in PERSONAL if s.matches(rel)), None)


def store_of(rel: str) -> Store | None:
    """The registered store a state-dir relative path belongs to, if any."""
    return personal_store(rel) or next((s for s in OTHER if s.matches(rel)), None)
