"""The MQTT source: subscribe to a broker and hand every message to the pipeline, acknowledging late.

``MqttSource`` runs paho-mqtt's network loop in its own thread. Each PUBLISH becomes a
:class:`archmon.domain.RawMessage` passed to ``handler``, which returns a future that resolves once
the readings are durable (store or spool). Only then is the message acknowledged (paho
``manual_ack``), so a crash, a store outage or a broker restart cannot lose it: the broker keeps an
unacknowledged message and sends it again when the session resumes. Writes downstream are idempotent,
so a redelivery is harmless: each message carries its packet id and DUP flag (QoS 1/2), with which the
pipeline gives a redelivered message without device time its first receive time again.

How:
- Persistent session: a fixed client id (``archmon-<site>-<source id>`` by default), QoS 1,
  MQTT 3.1.1 ``clean_session=False`` or MQTT 5 ``clean_start=False`` with a Session Expiry Interval
  of ``session_expiry_s``.
- Subscriptions are renewed on every (re)connect; ``session_present`` is not trusted (a broker
  that lost its state reports no session, but an ACL change or a broker bug can also drop them).
  With MQTT 5 they use retain handling 1, so a resumed session does not replay retained messages.
- Birth and will: ``online`` (retained) on the status topic after every connect, once the
  subscriptions are confirmed, a retained
  ``offline`` LWT if the connection dies, and ``offline`` published on a clean :meth:`MqttSource.stop`.
- Reconnect with exponential backoff between ``reconnect_min_s`` and ``reconnect_max_s``; an
  unreachable broker or a refused login is counted and retried, never raised.
- Acknowledgements: the future's callback (in whatever thread resolves it, usually the store
  writer's) queues the packet id; the network thread sends the queued PUBACKs at the end of each
  pass of its loop. Only the first of a run is sent by the resolving thread itself (paho's ``ack``
  appends the PUBACK to its outgoing queue and wakes the network thread), so a commit of a few
  hundred messages costs one wake-up, not one per message. An acknowledgement for a message
  received on an earlier connection is skipped: the broker sends that message again on the new
  connection (maybe under the same packet id), and the new copy is acknowledged when it is
  durable. Acknowledgements go out in the order futures resolve.
- Grouped handling (``batch_handler``, what ``archmon run`` uses): ``on_message`` only queues each
  message; at the end of a loop pass, once the socket has nothing more to read (or ``max_chunk``
  messages are queued), the network thread hands the queued chunk to ``batch_handler`` at once and gets
  one future for the lot; when it resolves, the chunk's messages are acknowledged in arrival order.
  A separate chunk thread was measured slower (GIL hand-offs). If the store refuses a chunk for good,
  its messages are handed over again one by one from a short-lived thread (counted ``chunk_splits``),
  so only the bad one stays unacknowledged.
- QoS 2 works but gives no more than QoS 1 here: paho answers PUBREC itself and keeps QoS 2 state in
  memory only, so use QoS 1 (the default) and idempotent writes.

Broker settings archmon needs (Mosquitto names; see ``collector/mqtt.sample.toml``):
- ``persistence true`` with a ``persistence_location``: sessions, queued and unacknowledged
  messages and retained messages survive a broker restart. Without it a broker restart loses them.
- ``max_queued_messages``: how many messages the broker queues for archmon while it is down (default
  1000 drops the rest; 100000 or more covers a long outage of a busy site). ``max_queued_bytes`` if
  memory matters.
- ``max_inflight_messages``: unacknowledged QoS 1 messages the broker sends before waiting for acks
  (default 20). archmon acks after a store commit, so this caps throughput: make it at least the
  store batch size (``storage.batch_size``), or 0 for unlimited. MQTT 5 clients can lower it with
  Receive Maximum; archmon does not.
- ``persistent_client_expiration`` (MQTT 3.1.1 sessions never expire otherwise) longer than any
  outage you want to survive; for MQTT 5 ``session_expiry_s`` sets it.
- ``allow_anonymous false`` with a ``password_file`` and a TLS listener on untrusted networks; an
  ACL that lets archmon's user read the sensor topics and write its status topic.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import select
import ssl
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from archmon.config import MqttSourceConfig
from archmon.domain import RawMessage
from archmon.errors import ConfigError, RetryLater
from archmon.timeutil import now_ms
from collector._mqtt_client import (
    OFFLINE,
    ONLINE,
    build_client,
    connect_properties,
    default_client_id,
    default_status_topic,
    subscription_list,
    validate_filter,
)

__all__ = ["MqttBatchHandler", "MqttHandler", "MqttSource"]

_LOG = logging.getLogger(__name__)

MqttHandler = Callable[[RawMessage], "concurrent.futures.Future[Any]"]
"""Takes a raw message, returns a future resolved when its readings are durable (failed if not)."""

MqttBatchHandler = Callable[[Sequence[RawMessage]], "concurrent.futures.Future[Any]"]
"""Takes raw messages (arrival order), returns one future resolved when all their readings are durable."""

_Entry = tuple[RawMessage, int, int, int]  # (message, packet id, QoS, connection generation)

_COUNTERS = (
    "received",
    "retained",
    "acked",
    "ack_skipped",
    "handler_errors",
    "handler_failures",
    "pending",
    "connects",
    "connect_failures",
    "disconnects",
    "subscribe_failures",
    "chunks",
    "chunk_splits",
)


class MqttSource:
    """Subscribes to one MQTT broker and hands each message to ``handler``, acking once it is durable.

    Building it validates the options and reads the password; it does not touch the network.

    Args:
        config: the validated ``[[mqtt]]`` table.
        handler: called in paho's network thread with each message; must return quickly with a
            future that resolves once the readings are durable. It must not raise.
        batch_handler: instead of ``handler``: called (in paho's network thread, one call at a time)
            with the messages received so far, in arrival order, at most ``max_chunk``; must return
            quickly with one future for all of them. It must not raise.
        max_chunk: most messages per ``batch_handler`` call (e.g. the store writer's batch size).
        site: the site name, used in the default client id and status topic.
        topics: topic filters derived from configured sensors; ``config.subscriptions`` filters are
            added, duplicates removed.

    Raises:
        ConfigError: a bad topic filter, a missing password variable/file or unreadable TLS files.
        TypeError: neither or both of ``handler`` and ``batch_handler`` given.
    """

    def __init__(
        self,
        config: MqttSourceConfig,
        handler: MqttHandler | None = None,
        *,
        batch_handler: MqttBatchHandler | None = None,
        max_chunk: int = 500,
        site: str,
        topics: Sequence[str] = (),
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise TypeError("MqttSource needs exactly one of handler and batch_handler")
        if max_chunk < 1:
            raise ValueError(f"max_chunk must be at least 1, not {max_chunk}")
        self.config = config
        self._handler = handler
        self._batch_handler = batch_handler
        self._max_chunk = max_chunk
        self._chunk: deque[_Entry] = deque()  # received, not yet handed to batch_handler
        self._handler_lock = threading.Lock()  # one batch_handler call at a time (network or split thread)
        self._name = f"mqtt[{config.id}]"
        self.client_id = config.client_id or default_client_id(site, config.id)
        self.status_topic = config.status_topic or default_status_topic(site, config.id)
        wanted = [*topics, *(sub.filter for sub in config.subscriptions)]
        self.topics: tuple[str, ...] = tuple(dict.fromkeys(validate_filter(t, f"{self._name} topics") for t in wanted))
        validate_filter(self.status_topic, f"{self._name}.status_topic")
        if "+" in self.status_topic or "#" in self.status_topic:
            raise ConfigError(f"{self._name}.status_topic: {self.status_topic!r} must not contain wildcards")
        if config.protocol == "5" and config.session_expiry_s == 0:
            _LOG.warning("%s: session_expiry_s = 0: messages sent while archmon is down are lost", self._name)
        self._client = build_client(
            config, client_id=self.client_id, status_topic=self.status_topic, password=config.password()
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message if batch_handler is None else self._enqueue
        self._client.on_loop_misc = self._send_queued_acks if batch_handler is None else self._end_of_pass
        self._lock = threading.Lock()
        self._ack_lock = threading.Lock()
        self._acks: deque[tuple[int, int, int]] = deque()  # (mid, qos, generation) waiting for the network thread
        self._ack_woken = False  # the network thread was woken for the queued acks
        self._stats = dict.fromkeys(_COUNTERS, 0)
        self._generation = 0  # bumped on every connect and disconnect; acks must match it
        self._ready = threading.Event()
        self._subscribe_mid: int | None = None
        self._failing_since_ok = 0
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; never raises for an unreachable broker (it retries)."""
        if self._started:
            return
        self._started = True
        _LOG.info(
            "%s: connecting to %s:%d as %r (MQTT %s, QoS %d, TLS %s), topics %s",
            self._name,
            self.config.host,
            self.config.port,
            self.client_id,
            self.config.protocol,
            self.config.qos,
            "on" if self.config.tls.enabled else "off",
            list(self.topics),
        )
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False if self.config.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties(self.config),
        )
        self._client.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish ``offline``, disconnect cleanly (no LWT) and stop the network thread.

        Messages still waiting for their future stay unacknowledged; the broker sends them again
        when a source with the same client id connects.
        """
        if not self._started:
            return
        self._started = False
        self._send_queued_acks()  # before DISCONNECT, so they go out first
        if self._client.is_connected():
            info = self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout / 2)
            except (RuntimeError, ValueError) as exc:
                _LOG.warning("%s: could not publish offline status: %s", self._name, exc)
            self._client.disconnect()
        self._client.loop_stop()  # also ends a reconnect wait or a connection attempt
        sock = self._client.socket()
        if sock is not None:  # stopped while a connection attempt was waiting for CONNACK
            sock.close()
        self._hand_over_chunk()  # the handler may defer them; their acks would be skipped anyway
        self._ready.clear()
        _LOG.info("%s: stopped (%s)", self._name, self.stats())

    @property
    def connected(self) -> bool:
        """True once connected and the subscriptions were answered, until the connection drops."""
        return self._ready.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until :attr:`connected` (for tests and the CLI); False after ``timeout`` seconds."""
        return self._ready.wait(timeout)

    def stats(self) -> dict[str, int]:
        """Counters: received, retained, acked, ack_skipped (stale connection), handler_errors (raised),
        handler_failures (future failed), pending (received, not yet acknowledged or given up), connects,
        connect_failures, disconnects, subscribe_failures; with ``batch_handler`` also chunks (handed
        over) and chunk_splits (refused by the store, handed over again one by one)."""
        with self._lock:
            return dict(self._stats)

    def _count(self, name: str, delta: int = 1) -> None:
        with self._lock:
            self._stats[name] += delta

    # -- paho callbacks (network thread) -----------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._connect_failed(f"broker refused the connection: {reason_code}")
            return
        with self._lock:
            self._generation += 1
            self._stats["connects"] += 1
            failures, self._failing_since_ok = self._failing_since_ok, 0
        _LOG.info(
            "%s: connected to %s:%d (session present: %s%s)",
            self._name,
            self.config.host,
            self.config.port,
            flags.session_present,
            f", after {failures} failed attempts" if failures else "",
        )
        if not self.topics:
            client.publish(self.status_topic, ONLINE, qos=1, retain=True)
            self._ready.set()
            return
        # "online" goes out once the subscriptions are confirmed: it means archmon is collecting.
        result, mid = client.subscribe(subscription_list(self.config, self.topics))
        if result != mqtt.MQTT_ERR_SUCCESS:
            self._count("subscribe_failures", len(self.topics))
            _LOG.error("%s: subscribe failed: %s", self._name, mqtt.error_string(result))
            return
        self._subscribe_mid = mid

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._connect_failed(f"cannot reach {self.config.host}:{self.config.port}")

    def _connect_failed(self, why: str) -> None:
        with self._lock:
            self._stats["connect_failures"] += 1
            self._failing_since_ok += 1
            first = self._failing_since_ok == 1
        # warn once per outage, then count
        _LOG.log(logging.WARNING if first else logging.DEBUG, "%s: %s; retrying", self._name, why)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [(t, rc) for t, rc in zip(self.topics, reason_codes, strict=False) if rc.is_failure]
        if refused:
            self._count("subscribe_failures", len(refused))
            for topic, code in refused:
                _LOG.error("%s: broker refused subscription to %r: %s", self._name, topic, code)
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        self._ready.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_ready = self._ready.is_set()
        self._ready.clear()
        with self._lock:
            self._generation += 1
            self._stats["disconnects"] += 1
        self._hand_over_chunk()  # received on this connection: store them before the broker resends them
        if self._started and was_ready:
            _LOG.warning("%s: connection lost (%s); reconnecting", self._name, reason_code)
        else:
            _LOG.debug("%s: disconnected (%s)", self._name, reason_code)

    def _received(self, msg: mqtt.MQTTMessage) -> tuple[RawMessage, int] | None:
        """The message as a ``RawMessage``, counted, with its connection generation (None: unusable topic)."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers reject these; never let paho's thread die on one
            self._count("handler_errors")
            _LOG.error("%s: message with a topic that is not UTF-8; not acknowledged", self._name)
            return None
        retained = bool(msg.retain)
        qos1 = msg.qos > 0  # packet id and DUP flag only mean something for QoS 1 and 2
        raw = RawMessage(self.config.id, topic, bytes(msg.payload), now_ms(), retained,
                         mid=msg.mid if qos1 else None, dup=bool(msg.dup) and qos1)
        stats = self._stats
        with self._lock:
            stats["received"] += 1
            stats["retained"] += retained
            stats["pending"] += 1
            generation = self._generation
        return raw, generation

    def _enqueue(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """``on_message`` with a ``batch_handler``: queue the message; the end of the loop pass hands it over."""
        received = self._received(msg)
        if received is not None:
            self._chunk.append((received[0], msg.mid, msg.qos, received[1]))
            if len(self._chunk) >= self._max_chunk:
                self._hand_over_chunk()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received = self._received(msg)
        if received is None:
            return
        raw, generation = received
        topic = raw.topic
        stats = self._stats
        assert self._handler is not None
        try:
            future = self._handler(raw)
            if not isinstance(future, concurrent.futures.Future):
                raise TypeError(f"handler returned {type(future).__name__}, not a concurrent.futures.Future")
        except Exception:
            with self._lock:
                stats["pending"] -= 1
                stats["handler_errors"] += 1
            _LOG.exception("%s: handler failed on topic %r; message not acknowledged", self._name, raw.topic)
            return
        future.add_done_callback(functools.partial(self._on_durable, msg.mid, msg.qos, generation, topic))

    # -- grouped handling (batch_handler) ----------------------------------------------------------

    def _end_of_pass(self) -> None:
        """``on_loop_misc`` with a ``batch_handler``: hand over the chunk once the socket is drained, send acks."""
        if self._chunk and not self._more_to_read():
            self._hand_over_chunk()
        self._send_queued_acks()

    def _more_to_read(self) -> bool:
        sock = self._client.socket()
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):  # closed under us: hand over what there is
            return False

    def _hand_over_chunk(self) -> None:
        with self._handler_lock:
            chunk = [self._chunk.popleft() for _ in range(len(self._chunk))]
            if chunk:
                self._hand_over(chunk)

    def _hand_over_one_by_one(self, chunk: list[_Entry]) -> None:
        """Split thread: hand a refused chunk's messages over again, each with its own future."""
        for entry in chunk:
            with self._handler_lock:
                self._hand_over([entry])

    def _hand_over(self, chunk: list[_Entry]) -> None:
        assert self._batch_handler is not None
        try:
            future = self._batch_handler([entry[0] for entry in chunk])
            if not isinstance(future, concurrent.futures.Future):
                raise TypeError(f"batch handler returned {type(future).__name__}, not a concurrent.futures.Future")
        except Exception:
            with self._lock:
                self._stats["pending"] -= len(chunk)
                self._stats["handler_errors"] += len(chunk)
            _LOG.exception("%s: batch handler failed on %d messages; not acknowledged", self._name, len(chunk))
            return
        with self._lock:
            self._stats["chunks"] += 1
        future.add_done_callback(functools.partial(self._on_chunk_durable, chunk))

    def _on_chunk_durable(self, chunk: list[_Entry], future: concurrent.futures.Future[Any]) -> None:
        """Future callback (any thread): acknowledge the chunk in arrival order, or split a refused one."""
        try:
            error: object = future.exception()
        except concurrent.futures.CancelledError:
            error = "cancelled"
        if error is not None:
            if len(chunk) > 1 and not isinstance(error, RetryLater | str):
                # Refused for good (not a store outage): find the bad message, store and ack the rest.
                self._count("chunk_splits")
                _LOG.warning(
                    "%s: store refused a chunk of %d messages (%s); handing them over one by one",
                    self._name,
                    len(chunk),
                    error,
                )
                # Not from the thread resolving the future: a full writer queue would block it for good.
                threading.Thread(
                    target=self._hand_over_one_by_one, args=(chunk,), name=f"archmon-{self._name}-split", daemon=True
                ).start()
                return
            with self._lock:
                self._stats["pending"] -= len(chunk)
                self._stats["handler_failures"] += len(chunk)
            _LOG.error(
                "%s: %d message(s) on %r not stored (%s); not acknowledged, the broker will send them again",
                self._name,
                len(chunk),
                chunk[0][0].topic,
                error,
            )
            return
        acked = skipped = qos0 = 0
        with self._ack_lock:
            queued = self._acks
            for _, mid, qos, generation in chunk:
                if qos == 0:
                    qos0 += 1
                elif self._ack_woken:  # the network thread will send it with the others
                    queued.append((mid, qos, generation))
                else:
                    # Sending this one wakes the network thread, which sends whatever queues up behind it.
                    ok, stale = self._ack(mid, qos, generation)
                    acked += ok
                    skipped += stale
                    self._ack_woken = ok == 1
        with self._lock:
            self._stats["pending"] -= acked + skipped + qos0
            self._stats["acked"] += acked
            self._stats["ack_skipped"] += skipped

    # -- acknowledgement ---------------------------------------------------------------------------

    def _on_durable(
        self, mid: int, qos: int, generation: int, topic: str, future: concurrent.futures.Future[Any]
    ) -> None:
        """Future callback (any thread): queue the acknowledgement, or count and log a failed write."""
        try:
            error: object = future.exception()
        except concurrent.futures.CancelledError:
            error = "cancelled"
        if error is not None:
            with self._lock:
                self._stats["pending"] -= 1
                self._stats["handler_failures"] += 1
            _LOG.error(
                "%s: message on %r not stored (%s); not acknowledged, the broker will send it again",
                self._name,
                topic,
                error,
            )
            return
        if qos == 0:
            self._count("pending", -1)
            return
        with self._ack_lock:
            if self._ack_woken:  # the network thread will send it with the others
                self._acks.append((mid, qos, generation))
                return
            # Sending this one wakes the network thread, which then sends whatever queues up behind it.
            acked, skipped = self._ack(mid, qos, generation)
            self._ack_woken = acked == 1  # a skipped ack woke nobody: the next one is sent here too
        with self._lock:
            self._stats["pending"] -= 1
            self._stats["acked"] += acked
            self._stats["ack_skipped"] += skipped

    def _send_queued_acks(self) -> None:
        """Send the queued acknowledgements (network thread, each loop pass; and on stop)."""
        if not self._ack_woken:
            return
        acked = skipped = 0
        with self._ack_lock:
            acks = self._acks
            while acks:
                mid, qos, generation = acks.popleft()
                ok, stale = self._ack(mid, qos, generation)
                acked += ok
                skipped += stale
            self._ack_woken = False
        if acked or skipped:
            with self._lock:
                self._stats["pending"] -= acked + skipped
                self._stats["acked"] += acked
                self._stats["ack_skipped"] += skipped

    def _ack(self, mid: int, qos: int, generation: int) -> tuple[int, int]:
        """Hand one PUBACK to paho; returns (1, 0) if sent, (0, 1) if skipped."""
        if generation != self._generation:
            _LOG.debug("%s: mid %d came on an earlier connection; not acknowledged", self._name, mid)
            return 0, 1
        result = self._client.ack(mid, qos)
        if result == mqtt.MQTT_ERR_SUCCESS:
            return 1, 0
        _LOG.debug("%s: ack of mid %d failed: %s", self._name, mid, mqtt.error_string(result))
        return 0, 1

    # -- reload (``archmon run`` on SIGHUP) --------------------------------------------------------

    def set_topics(self, topics: Sequence[str], *, timeout: float = 5.0) -> tuple[list[str], list[str]]:
        """Use ``topics`` (the complete list of filters, e.g. ``Router.mqtt_topics``) from now on.

        New filters are subscribed and dropped ones unsubscribed at once on the open connection (no
        reconnect, so nothing in flight is disturbed), waiting up to ``timeout`` seconds for the broker's
        answer; a reconnect subscribes the new list anyway.

        Returns:
            The filters added and removed.

        Raises:
            ConfigError: a bad filter (nothing is changed).
        """
        wanted = tuple(dict.fromkeys(validate_filter(t, f"{self._name} topics") for t in topics))
        old, self.topics = self.topics, wanted
        added = [t for t in wanted if t not in old]
        removed = [t for t in old if t not in wanted]
        if self._client.on_subscribe != self._on_subscribe_after_reload:
            self._reload_mids: dict[int, tuple[list[str], threading.Event]] = {}
            self._client.on_subscribe = self._on_subscribe_after_reload
        if self._started and self._client.is_connected():
            if removed:
                self._client.unsubscribe(removed)
            if added:
                answered = threading.Event()
                with self._lock:  # the answer may come before subscribe() returns
                    result, mid = self._client.subscribe(subscription_list(self.config, added))
                    if result == mqtt.MQTT_ERR_SUCCESS:
                        self._reload_mids[mid] = (added, answered)
                if result != mqtt.MQTT_ERR_SUCCESS:
                    self._count("subscribe_failures", len(added))
                    _LOG.error("%s: subscribe to %s failed: %s", self._name, added, mqtt.error_string(result))
                elif not answered.wait(timeout):
                    _LOG.warning("%s: no answer to the subscription of %s within %g s", self._name, added, timeout)
        if added or removed:
            _LOG.info("%s: topics now %s (added %s, removed %s)", self._name, list(wanted), added, removed)
        return added, removed

    def _on_subscribe_after_reload(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._lock:
            pending = self._reload_mids.pop(mid, None)
        if pending is None:
            self._on_subscribe(client, userdata, mid, reason_codes, properties)
            return
        topics, answered = pending
        for topic, code in zip(topics, reason_codes, strict=False):
            if code.is_failure:
                self._count("subscribe_failures")
                _LOG.error("%s: broker refused subscription to %r: %s", self._name, topic, code)
        answered.set()
