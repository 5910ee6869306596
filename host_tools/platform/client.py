"""A minimal service-platform MQTT client: receive (de-duplicated) up-link, send commands."""

from __future__ import annotations

import collections
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.core import strictjson
from firmware.core.errors import ConfigError, StateError
from firmware.gateway.wan import topics
from firmware.gateway.wan.identity import parse_broker_url
from firmware.gateway.wan.tls import harden
from host_tools.platform.site import PlatformSite

UPLINK_DEPTH = 32  # self-test reports nest deepest


class Deduper:
    """Remembers the last ``size`` message ids; ``fresh(id)`` is True only the first time."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.duplicates = 0

    def fresh(self, msg_id: str) -> bool:
        """True when the id was not seen before (and remember it)."""
        if msg_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[msg_id] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


def platform_context(site: PlatformSite) -> ssl.SSLContext:
    """Pinned site CA, host-name check, the platform's client certificate."""
    ctx = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    try:
        ctx.load_verify_locations(cafile=str(site.ca))
        ctx.load_cert_chain(str(site.client_cert), str(site.client_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("cannot load platform TLS files: " + exc.__class__.__name__,
                          str(site.root))
    return ctx


class PlatformClient:
    """Connects as the platform; collects every up-link message once (by ``id``)."""

    def __init__(self, site: PlatformSite, broker_url: str,
                 on_message: Callable[[dict[str, Any]], None] | None = None,
                 session_id: str | None = None) -> None:
        """``session_id``: a persistent MQTT session (the broker keeps QoS 1 messages for it
        while the platform is away), else a clean one with a random client id."""
        self.host, self.port = parse_broker_url(broker_url)
        self.site = site
        self.on_message = on_message
        self.dedupe = Deduper()
        self.received: list[dict[str, Any]] = []
        self.errors = 0
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.session_id = session_id
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=session_id or "platform-" + secrets.token_hex(4),
                                   protocol=mqtt.MQTTv5)
        self._client.reconnect_delay_set(1, 4)
        self._client.tls_set_context(platform_context(site))
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self.last_error = ""

    def connect(self, timeout: float = 10.0, subscribe: bool = True) -> None:
        """Connect (and subscribe to every gateway's up-link); StateError on failure."""
        self._want_sub = subscribe
        try:
            props = None
            if self.session_id:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = 24 * 3600
            self._client.connect(self.host, self.port, keepalive=30,
                                 clean_start=not self.session_id, properties=props)
        except ConnectionRefusedError:
            raise StateError(f"nothing listens at {self.host}:{self.port}: the broker is not "
                             "running there",
                             "start it (the demo's broker runs only while `make run` does; "
                             "`mamori-gateway status` shows its URL), or check --broker")
        except (OSError, ssl.SSLError) as exc:
            raise StateError(f"cannot reach the broker at {self.host}:{self.port}: "
                             f"{exc.__class__.__name__}: {exc}",
                             "check --broker and the site's platform certificate")
        self._client.loop_start()
        ok = self._connected.wait(timeout) and (not subscribe or self._subscribed.wait(timeout))
        if not ok:
            self.close()
            raise StateError("broker did not accept the platform connection: "
                             + (self.last_error or "timeout"))

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    # -- callbacks ------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: Any, _f: Any, reason: Any,
                    _p: Any) -> None:
        if reason.is_failure:
            self.last_error = str(reason)
            return
        self._connected.set()
        if self._want_sub:
            client.subscribe(topics.PREFIX + "/+/+", qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _ud: Any, _mid: int, _codes: Any,
                      _p: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed = topics.parse_up(msg.topic)
            doc: Any = strictjson.loads(bytes(msg.payload), "up-link message", UPLINK_DEPTH)
            if parsed is None or not isinstance(doc, dict):
                self.errors += 1
                return
            gateway, kind = parsed
            if kind == "status":
                # no id of its own: named by its content, so the retained copy of a status
                # the session already delivered live counts as a duplicate
                sid = "status-" + hashlib.sha256(bytes(msg.payload)).hexdigest()[:32]
                if not self.dedupe.fresh(sid):
                    return
                doc = {"id": sid, "gateway": gateway, "type": "status", "body": doc}
            elif doc.get("gateway") != gateway or not self.dedupe.fresh(str(doc.get("id"))):
                return  # duplicate (at-least-once delivery) or spoofed gateway field
            doc["topic"] = msg.topic
            doc["retained"] = bool(msg.retain)
            with self._cond:
                self.received.append(doc)
                self._cond.notify_all()
            if self.on_message is not None:
                self.on_message(doc)
        except Exception:
            self.errors += 1

    # -- requests -------------------------------------------------------------------------
    def publish(self, topic: str, doc: dict[str, Any], timeout: float = 10.0) -> None:
        """Publish one JSON document with QoS 1 and wait for the broker's PUBACK."""
        info = self._client.publish(topic, json.dumps(doc), qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise StateError("broker did not acknowledge the request")

    def publish_raw(self, topic: str, payload: bytes) -> None:
        """Publish raw bytes (tests: malformed input)."""
        self._client.publish(topic, payload, qos=1).wait_for_publish(10)

    def mark(self) -> int:
        """Position in ``received`` to wait from (only later messages count)."""
        with self._cond:
            return len(self.received)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float,
                 count: int = 1, start: int = 0) -> list[dict[str, Any]]:
        """Block until ``count`` received messages (from ``start``) satisfy pred; return them."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.received[start:] if pred(m)]
                left = end - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._cond.wait(left)

    def command(self, env: dict[str, Any], timeout: float = 15.0) -> dict[str, Any] | None:
        """Send a command envelope; return the gateway's cmd_result body (None on timeout)."""
        start = self.mark()
        self.publish(topics.command(env["gateway"], env["device"]), env)
        found = self.wait_for(lambda m: m.get("type") == "cmd_result"
                              and m.get("body", {}).get("command_id") == env["id"], timeout,
                              start=start)
        return found[0]["body"] if found else None
