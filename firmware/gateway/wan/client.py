"""The WAN MQTT client: one outbound MQTT 5 connection over mutual TLS (CPython, paho-mqtt 2.x).

Threads (all daemons, all guarded):

- **network**: connects (TLS handshake included), runs paho's ``loop()``, pumps the outbox
  (QoS 1, up to ``max_inflight`` un-acknowledged messages; a message is deleted from the queue
  only on the broker's successful PUBACK), and on any loss reconnects after a jittered
  exponential back-off. Each connection uses a fresh paho client, so nothing stale is resent.
- **watchdog**: restarts the network thread when it died or has not ticked for
  ``stall_timeout`` seconds (a hung socket, a wedged library call).
- **inbound**: hands validated down-link messages to the handler one at a time, so a slow
  device never blocks the network loop.
- **acks**: deletes acknowledged messages from the outbox in batches (one transaction, one
  sync each), so the network thread keeps publishing while the disk syncs; messages being
  deleted are never picked up again.

Every callback is wrapped: an exception in a handler is counted and logged, never fatal.

The broker binds the client id to the certificate (``use_username_as_clientid``), so only a
holder of this gateway's own key can take its session over (a copied key). Two signs of that:
the broker ends our session with MQTT 5 reason 0x8E (*session taken over*; brokers that send
it), or our own retained ``status`` topic carries a connection token that is not ours. Every
connection publishes its status (and its will) with a fresh token, remembered in
``token_file`` across restarts, and reads its own status topic back: a status or will from any
other client using this identity shows up there, at the latest when we connect again (the
broker keeps the last one). The client counts such takeovers and calls ``on_takeover(count)``
once connected again: the gateway raises an alert then (while kicked off it could not have told
anyone).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import queue as stdqueue
import random
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.common.fsutil import atomic_write
from firmware.core import strictjson
from firmware.core.errors import MamoriError
from firmware.gateway.wan import topics
from firmware.gateway.wan.identity import WanIdentity
from firmware.gateway.wan.queue import OutboundQueue
from firmware.gateway.wan.tls import client_context

log = logging.getLogger("mamori.wan")

# (kind, device or None, payload) -> None
InboundHandler = Callable[[str, "str | None", bytes], None]

MAX_PACKET = 256 * 1024  # announced to the broker (MQTT 5 Maximum Packet Size)
SESSION_TAKEN_OVER = 0x8E  # MQTT 5 DISCONNECT reason code


class WanClient:
    """Outbound MQTT 5 client with store-and-forward, reconnect, watchdog and guarded callbacks."""

    def __init__(self, identity: WanIdentity, outbox: OutboundQueue,
                 on_inbound: InboundHandler | None = None, *, keepalive: int = 30,
                 backoff_min: float = 0.5, backoff_max: float = 60.0,
                 max_inflight: int = 32, max_inbound: int = 16 * 1024,
                 stall_timeout: float = 60.0, connect_timeout: float = 10.0,
                 status_interval: float = 60.0,
                 status_extra: Callable[[], dict[str, Any]] | None = None,
                 rng: Callable[[], float] = random.random,
                 on_takeover: Callable[[int], None] | None = None,
                 token_file: Path | None = None) -> None:
        self.identity = identity
        self.outbox = outbox
        self.on_inbound = on_inbound
        self.keepalive = keepalive
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.max_inflight = max_inflight
        self.max_inbound = max_inbound
        self.stall_timeout = stall_timeout
        self.connect_timeout = connect_timeout
        self.status_interval = status_interval
        self.status_extra = status_extra
        self.on_takeover = on_takeover
        self._takeover_pending = 0
        self.token_file = token_file
        self._token = ""
        self._tokens: collections.deque[str] = collections.deque(maxlen=64)
        if token_file is not None:
            with contextlib.suppress(OSError, UnicodeError):
                self._tokens.extend(t[:64] for t in token_file.read_text().split()[-8:])
        self._rng = rng
        self._ctx = client_context(identity)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._gen = 0
        self._net: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._inbound_thread: threading.Thread | None = None
        self._inbound: stdqueue.Queue[tuple[str, str | None, bytes] | None] = \
            stdqueue.Queue(maxsize=64)
        self._paho: mqtt.Client | None = None
        self._inflight: dict[int, str] = {}
        self._acked: list[str] = []
        self._deleting: set[str] = set()  # acknowledged, being deleted by the acks thread
        self._ack_cond = threading.Condition()
        self._ack_todo: list[str] = []
        self._ack_thread: threading.Thread | None = None
        self._tick = time.monotonic()
        self._attempt = 0
        self._last_status = 0.0
        self.connected = False  # connected *and* subscribed: commands can reach us
        self._session_up = False  # CONNACK received on the current connection
        self._sub_mid = -1
        self.last_error = ""
        # Test seam: called at every network-loop iteration (used to simulate a wedged loop).
        self.fault_hook: Callable[[], None] | None = None
        self.counters: dict[str, int] = {
            "connect_attempts": 0, "connects": 0, "disconnects": 0, "loop_restarts": 0,
            "published": 0, "acked": 0, "publish_rejected": 0, "inbound_accepted": 0,
            "inbound_unknown_topic": 0, "inbound_oversized": 0, "inbound_overflow": 0,
            "handler_errors": 0, "callback_errors": 0, "takeovers": 0,
            "own_status": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the network, watchdog and inbound threads (returns at once)."""
        self._stop.clear()
        self._start_network()
        self._inbound_thread = threading.Thread(target=self._inbound_loop,
                                                name="wan-inbound", daemon=True)
        self._inbound_thread.start()
        self._watchdog = threading.Thread(target=self._watchdog_loop, name="wan-watchdog",
                                          daemon=True)
        self._watchdog.start()
        self._ack_thread = threading.Thread(target=self._ack_loop, name="wan-acks", daemon=True)
        self._ack_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly and stop every thread; queued messages stay on disk."""
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(stdqueue.Full):
            self._inbound.put_nowait(None)
        for t in (self._watchdog, self._net, self._inbound_thread):
            if t is not None and t is not threading.current_thread():
                t.join(timeout)
        with self._ack_cond:
            self._ack_cond.notify()
        if self._ack_thread is not None:
            self._ack_thread.join(timeout)
        self._flush_acks()
        self._delete_acked()  # what the acks thread had not done yet

    def notify(self) -> None:
        """Tell the network thread new messages are queued (it also polls)."""
        self._wake.set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected (CONNACK and SUBACK) or timeout; True when connected."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connected:
                return True
            time.sleep(0.02)
        return self.connected

    def status(self) -> dict[str, Any]:
        """Connection state, counters and queue statistics."""
        return {"connected": self.connected,
                "broker": f"{self.identity.broker_host}:{self.identity.broker_port}",
                "gateway_id": self.identity.gateway_id, "last_error": self.last_error,
                "inflight": len(self._inflight), "queue": self.outbox.stats(),
                **self.counters}

    # -- network thread -------------------------------------------------------------------
    def _start_network(self) -> None:
        self._gen += 1
        self._tick = time.monotonic()
        self._net = threading.Thread(target=self._network_loop, args=(self._gen,),
                                     name=f"wan-net-{self._gen}", daemon=True)
        self._net.start()

    def _alive(self, gen: int) -> bool:
        return not self._stop.is_set() and gen == self._gen

    def _network_loop(self, gen: int) -> None:
        while self._alive(gen):
            self._tick = time.monotonic()
            client = self._new_paho()
            self.counters["connect_attempts"] += 1
            try:
                client.connect(self.identity.broker_host, self.identity.broker_port,
                               self.keepalive, clean_start=True,
                               properties=self._connect_properties())
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._record_error("connect", exc)
                self._backoff(gen)
                continue
            if not self._alive(gen):
                with contextlib.suppress(Exception):
                    client.disconnect()
                break
            self._paho = client
            try:
                self._run_connection(client, gen)
            finally:
                if gen == self._gen:  # a restarted loop owns the shared state now
                    self._paho = None
                    self._lost()
                if self._stop.is_set():
                    with contextlib.suppress(Exception):
                        self._publish_status(client, online=False)
                        client.loop(0.2)
                        client.disconnect()
                        client.loop(0.2)
                with contextlib.suppress(Exception):
                    sock = client.socket()
                    if sock is not None:
                        sock.close()
            if self._alive(gen):
                self._backoff(gen)

    def _run_connection(self, client: mqtt.Client, gen: int) -> None:
        inflight: dict[int, str] = {}  # this connection's mid -> msg_id, awaiting PUBACK
        client.user_data_set(inflight)
        self._inflight = inflight
        while self._alive(gen):
            self._tick = time.monotonic()
            if self.fault_hook is not None:
                self.fault_hook()
            rc = client.loop(timeout=0.05)
            self._flush_acks()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                if not self.last_error or self.connected:
                    self.last_error = f"connection lost: {mqtt.error_string(rc)}"
                return
            if self.connected:
                self._pump(client, inflight)
                if time.monotonic() - self._last_status > self.status_interval:
                    self._publish_status(client, online=True)
            self._wake.clear()

    def _backoff(self, gen: int) -> None:
        ceiling = min(self.backoff_max, self.backoff_min * (2 ** min(self._attempt, 16)))
        self._attempt += 1
        delay = ceiling / 2 + self._rng() * ceiling / 2  # "equal jitter": never 0, spread out
        end = time.monotonic() + delay
        while self._alive(gen) and time.monotonic() < end:
            self._tick = time.monotonic()
            self._stop.wait(min(0.2, max(0.0, end - time.monotonic())))

    def _new_token(self) -> None:
        """A fresh connection token for our status and will."""
        self._token = secrets.token_hex(8)
        self._tokens.append(self._token)

    def _remember_token(self) -> None:
        """Persist the tokens of accepted connections: our own last status is no clone."""
        if self.token_file is None:
            return
        try:
            recent = [t for t in self._tokens if t][-8:]
            atomic_write(self.token_file, ("\n".join(recent) + "\n").encode())
        except OSError as exc:  # a full disk: detection works for this boot still
            self._record_error("token", exc)

    def _new_paho(self) -> mqtt.Client:
        self._new_token()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.identity.gateway_id,
                        protocol=mqtt.MQTTv5)
        c.suppress_exceptions = True
        c.connect_timeout = self.connect_timeout
        c.tls_set_context(self._ctx)
        c.max_inflight_messages_set(self.max_inflight)
        c.max_queued_messages_set(0)
        c.will_set(topics.up(self.identity.gateway_id, "status"),
                   json.dumps({"gateway": self.identity.gateway_id, "online": False,
                               "conn": self._token}),
                   qos=1, retain=True)
        c.on_connect = self._guard(self._on_connect)
        c.on_disconnect = self._guard(self._on_disconnect)
        c.on_publish = self._guard(self._on_publish)
        c.on_subscribe = self._guard(self._on_subscribe)
        c.on_message = self._guard(self._on_message)
        return c

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.MaximumPacketSize = MAX_PACKET
        props.SessionExpiryInterval = 0
        return props

    def _record_error(self, where: str, exc: BaseException) -> None:
        # exception text only (certificate names, errnos): never key material
        self.last_error = f"{where}: {exc.__class__.__name__}: {exc}"
        log.warning("wan %s failed", where, extra={"error": self.last_error})

    # -- callbacks (run in the network thread) --------------------------------------------
    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def wrapped(*args: Any) -> None:
            try:
                fn(*args)
            except Exception:
                self.counters["callback_errors"] += 1
                log.exception("wan callback %s failed", fn.__name__)
        return wrapped

    def _lost(self) -> None:
        """The connection ended (however it was noticed): count it once."""
        if self._session_up:
            self.counters["disconnects"] += 1
        self._session_up = False
        self.connected = False

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            return
        self._session_up = True
        self._attempt = 0
        self.counters["connects"] += 1
        self.last_error = ""
        # One SUBSCRIBE for everything; `connected` only once the broker acknowledged it, so a
        # command sent the moment we say "connected" cannot miss us. Our own status topic
        # first: its retained value says who used this identity last.
        own = topics.up(self.identity.gateway_id, "status")
        _rc, mid = client.subscribe(
            [(t, 1) for t in [own, *topics.subscriptions(self.identity.gateway_id)]])
        self._sub_mid = -1 if mid is None else mid

    def _on_subscribe(self, client: mqtt.Client, _ud: Any, mid: int, _codes: Any,
                      _props: Any) -> None:
        if mid != self._sub_mid or not self._session_up:
            return
        self.connected = True
        self._publish_status(client, online=True)
        self._remember_token()
        self._tell_takeover()

    def _tell_takeover(self) -> None:
        if self._takeover_pending and self.connected and self.on_takeover is not None:
            count, self._takeover_pending = self._takeover_pending, 0
            self.on_takeover(count)

    def _own_status(self, payload: bytes) -> None:
        """A status on our own topic: a token that is not ours means another client is us."""
        try:
            doc = strictjson.loads_object(payload, "own status", max_depth=4, max_bytes=65536)
        except MamoriError:
            return
        self.counters["own_status"] += 1
        token = doc.get("conn")
        if not isinstance(token, str) or not token or token in self._tokens:
            return
        self._tokens.append(token)  # one alert per foreign connection
        self.counters["takeovers"] += 1
        self._takeover_pending += 1
        log.warning("another client used this gateway's MQTT identity (foreign status token)")
        self._tell_takeover()

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        if reason is not None and getattr(reason, "is_failure", False):
            self.last_error = f"disconnected: {reason}"
        if getattr(reason, "value", None) == SESSION_TAKEN_OVER:
            self.counters["takeovers"] += 1
            self._takeover_pending += 1
            log.warning("wan session taken over by another client with this gateway's id")
        self._lost()

    def _on_publish(self, _c: mqtt.Client, inflight: Any, mid: int, reason: Any,
                    _props: Any) -> None:
        msg_id = inflight.pop(mid, None) if isinstance(inflight, dict) else None
        if msg_id is None:
            return
        if reason is not None and getattr(reason, "is_failure", False):
            # the broker refused it for good (e.g. not authorised, packet too large): keeping
            # it would block the queue forever; it is counted and logged instead
            self.counters["publish_rejected"] += 1
            log.error("broker rejected up-link message", extra={"msg_id": msg_id,
                                                                "reason": str(reason)})
        else:
            self.counters["acked"] += 1
        self._acked.append(msg_id)  # deleted in one transaction per loop pass

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topics.up(self.identity.gateway_id, "status"):
            self._own_status(bytes(msg.payload))
            return
        parsed = topics.parse_down(self.identity.gateway_id, msg.topic)
        if parsed is None:
            self.counters["inbound_unknown_topic"] += 1
            log.warning("message on unknown topic rejected", extra={"topic": msg.topic[:200]})
            return
        limit = MAX_PACKET if parsed[0] == "crl_push" else self.max_inbound  # a CRL grows per site
        if len(msg.payload) > limit:
            self.counters["inbound_oversized"] += 1
            log.warning("oversized message rejected", extra={"bytes": len(msg.payload)})
            return
        try:
            self._inbound.put_nowait((parsed[0], parsed[1], bytes(msg.payload)))
        except stdqueue.Full:
            self.counters["inbound_overflow"] += 1
            return
        self.counters["inbound_accepted"] += 1

    # -- outbox pump ----------------------------------------------------------------------
    def _flush_acks(self) -> None:
        """Hand the acknowledged ids to the acks thread (the network thread never syncs)."""
        if self._acked:
            acked, self._acked = self._acked, []
            with self._ack_cond:
                self._deleting.update(acked)
                self._ack_todo.extend(acked)
                self._ack_cond.notify()

    def _ack_loop(self) -> None:
        while not self._stop.is_set():
            with self._ack_cond:
                while not self._ack_todo and not self._stop.is_set():
                    self._ack_cond.wait(0.5)
            self._delete_acked()

    def _delete_acked(self) -> None:
        with self._ack_cond:
            todo, self._ack_todo = self._ack_todo, []
        if not todo:
            return
        try:
            self.outbox.ack_many(todo)
        except Exception as exc:  # a failing disk: they are sent again later (at-least-once)
            log.error("cannot delete acknowledged messages: %r", exc)
        with self._ack_cond:
            self._deleting.difference_update(todo)

    def _pump(self, client: mqtt.Client, inflight: dict[int, str]) -> None:
        room = self.max_inflight - len(inflight)
        if room <= 0:
            return
        with self._ack_cond:
            busy = set(inflight.values()) | self._deleting
        for m in self.outbox.peek(room, busy):
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = ("msg-id", m.msg_id)
            info = client.publish(m.topic, m.payload, qos=1, properties=props)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # connection going down: the network loop notices
            inflight[info.mid] = m.msg_id
            self.counters["published"] += 1

    def _publish_status(self, client: mqtt.Client, online: bool) -> None:
        self._last_status = time.monotonic()
        doc: dict[str, Any] = {"gateway": self.identity.gateway_id, "online": online,
                               "ts": time.time(), "queue_depth": len(self.outbox),
                               "conn": self._token}
        if self.status_extra is not None:
            try:
                doc.update(self.status_extra())
            except Exception:
                self.counters["callback_errors"] += 1
        client.publish(topics.up(self.identity.gateway_id, "status"),
                       json.dumps(doc, default=str), qos=1, retain=True)

    # -- inbound and watchdog threads -----------------------------------------------------
    def _inbound_loop(self) -> None:
        while not self._stop.is_set():
            item = self._inbound.get()
            if item is None:
                return
            if self.on_inbound is None:
                continue
            try:
                self.on_inbound(*item)
            except Exception:
                self.counters["handler_errors"] += 1
                log.exception("wan inbound handler failed")

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(min(1.0, self.stall_timeout / 4)):
            net = self._net
            dead = net is None or not net.is_alive()
            stalled = time.monotonic() - self._tick > self.stall_timeout
            if not (dead or stalled) or self._stop.is_set():
                continue
            self.counters["loop_restarts"] += 1
            self.last_error = "network loop " + ("died" if dead else "stalled") + ": restarted"
            log.error("wan network loop restarted", extra={"dead": dead, "stalled": stalled})
            old = self._paho
            self._lost()
            self._start_network()  # bumps the generation: the old thread exits when it wakes
            if old is not None:
                with contextlib.suppress(Exception):
                    sock = old.socket()
                    if sock is not None:
                        sock.close()
