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
- Acknowledgements (``collector/_mqtt_acks.py``): once a chunk's future resolves, its messages are
  acknowledged in arrival order; the thread resolving it sends the first PUBACK (waking the network
  thread) and queues the rest for the network thread, so a commit of a few hundred messages costs one
  wake-up. A message received on an earlier connection is not acknowledged: the broker sends it again
  on the new connection, and that copy is acknowledged when it is durable.
- One path (``collector/_mqtt_chunks.py``): ``on_message`` only queues each message; at the end of a
  loop pass, once the socket has nothing more to read (or ``max_chunk`` messages are queued), the
  network thread hands the queue to ``batch_handler`` (what ``archmon run`` uses) and gets one future
  for the lot. A per-message ``handler`` is the same path with chunks of one message. If the store
  refuses a chunk for good, its messages are handed over again one by one from a short-lived thread
  (counted ``chunk_splits``); the pipeline quarantines a lone refused message, which is then
  acknowledged, so a bad message neither comes back on every reconnect nor holds an in-flight place.
- Back-pressure: the handler must never block the network thread (paho's thread also answers the
  broker's keepalive). When the store writer is full it raises ``RetryLater`` at once; the source keeps
  the chunk, acknowledges nothing of it, and offers it again shortly after (counted ``held``). The
  connection stays alive, and the broker stops sending QoS 1/2 messages once its in-flight window is
  full of unacknowledged ones: Mosquitto's ``max_inflight_messages`` for MQTT 3.1.1, and for MQTT 5 the
  Receive Maximum archmon sends (``2 × max_chunk``, at least 100; Mosquitto uses it in place of its own
  limit). QoS 0 deliveries are not bounded by any
  window: past as many held messages the oldest QoS 0 ones are dropped (``qos0_dropped``). Devices
  should publish at QoS 1 (a message is delivered at the lower of the publisher's and archmon's QoS).
- Replays without DUP (``collector/_mqtt_session.py``): messages at the start of a resumed session whose
  packet ids are not ahead of those already received are marked ``replayed``; the pipeline stores them
  anew and counts the ones that may be copies.
- QoS 2 works but gives no more than QoS 1 here: paho answers PUBREC itself and keeps QoS 2 state in
  memory only, so use QoS 1 (the default) and idempotent writes.

Broker settings archmon needs (persistence, queue and in-flight limits, session expiry, authentication):
``collector/mqtt.sample.toml`` and ``docs/collector.md``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from archmon.domain import RawMessage
from archmon.errors import ConfigError
from archmon.paho import stop_network_loop
from archmon.timeutil import now_ms
from collector._mqtt_acks import AckCount, AckSender, Delivery
from collector._mqtt_chunks import ChunkFeeder, default_max_held, one_at_a_time
from collector._mqtt_client import (
    OFFLINE,
    ONLINE,
    build_client,
    connect_properties,
    default_client_id,
    default_status_topic,
    more_to_read,
    subscription_list,
    validate_filter,
)
from collector._mqtt_session import ReplayWatch
from collector._mqtt_topics import PendingSubscriptions, TopicChange
from collector.mqtt_config import MqttSourceConfig

__all__ = ["MqttBatchHandler", "MqttHandler", "MqttSource"]

_LOG = logging.getLogger(__name__)

MqttHandler = Callable[[RawMessage], "concurrent.futures.Future[Any]"]
"""Takes a raw message, returns a future resolved when its readings are durable (failed if not)."""

MqttBatchHandler = Callable[[Sequence[RawMessage]], "concurrent.futures.Future[Any]"]
"""Takes raw messages (arrival order), returns one future resolved when all their readings are durable.

Raises ``RetryLater`` at once (never blocks) when the store cannot take them now: the source keeps them."""

_COUNTERS = (
    "received", "retained", "replayed", "acked", "ack_skipped", "handler_errors", "handler_failures", "pending",
    "held", "connects", "connect_failures", "disconnects", "subscribe_failures", "chunks", "chunk_splits",
    "qos0_dropped",
)


class MqttSource:
    """Subscribes to one MQTT broker and hands each message to ``handler``, acking once it is durable.

    Building it validates the options and reads the password; it does not touch the network.

    Args:
        config: the validated ``[[mqtt]]`` table.
        handler: instead of ``batch_handler``: called with each message; the same path as
            ``batch_handler`` with chunks of one message.
        batch_handler: called (in paho's network thread, one call at a time) with the messages received
            so far, in arrival order, at most ``max_chunk``; must return at once with one future for all of
            them, or raise ``RetryLater`` when the store cannot take them now (they are offered again).
        max_chunk: most messages per ``batch_handler`` call (e.g. the store writer's batch size).
        site: the site name, used in the default client id and status topic.
        topics: topic filters derived from configured sensors; ``config.subscriptions`` filters are
            added, duplicates removed.
        where: the source's table in the file (``sources[0] (broker)``), named in configuration errors.

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
        where: str = "",
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise TypeError("MqttSource needs exactly one of handler and batch_handler")
        if max_chunk < 1:
            raise ValueError(f"max_chunk must be at least 1, not {max_chunk}")
        self.config = config
        if handler is not None:
            batch_handler, max_chunk = one_at_a_time(handler), 1
        assert batch_handler is not None
        self._max_chunk = max_chunk
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
            config, client_id=self.client_id, status_topic=self.status_topic, password=config.password(where),
            where=where,
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._enqueue
        self._client.on_loop_misc = self._end_of_pass
        self._lock = threading.Lock()
        self._stats = dict.fromkeys(_COUNTERS, 0)
        self._generation = 0  # bumped on every connect and disconnect; acks must match it
        self._acks = AckSender(self._client, lambda: self._generation, self._name)
        self._chunk = ChunkFeeder(batch_handler, max_chunk=max_chunk, acks=self._acks, count=self._count,
                                  settled=self._settled, running=lambda: self._started, name=self._name)
        self._replays = ReplayWatch()
        self._ready = threading.Event()
        self._subscribe_mid: int | None = None
        self._reload_subscriptions = PendingSubscriptions(self._name, self._count)
        self._failing_since_ok = 0
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; never raises for an unreachable broker (it retries)."""
        if self._started:
            return
        self._started = True
        config = self.config
        _LOG.info("%s: connecting to %s:%d as %r (MQTT %s, QoS %d, TLS %s), topics %s", self._name, config.host,
                  config.port, self.client_id, config.protocol, config.qos, "on" if config.tls.enabled else "off",
                  list(self.topics))
        self._client.connect_async(
            config.host, config.port, keepalive=config.keepalive_s,
            clean_start=False if config.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties(config, receive_maximum=default_max_held(self._max_chunk)),
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
        self._settled(self._acks.flush())  # before DISCONNECT, so they go out first
        if self._client.is_connected():
            info = self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout / 2)
            except (RuntimeError, ValueError) as exc:
                _LOG.warning("%s: could not publish offline status: %s", self._name, exc)
            self._client.disconnect()
        stop_network_loop(self._client)  # also ends a reconnect wait or a connection attempt
        sock = self._client.socket()
        if sock is not None:  # stopped while a connection attempt was waiting for CONNACK
            sock.close()
        self._chunk.hand_over(now=True)  # the handler may defer them; their acks would be skipped anyway
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
        """Counters: received, retained, replayed (may be a resend without DUP), acked, ack_skipped (stale
        connection), handler_errors (raised), handler_failures (future failed), pending (received, not yet
        acknowledged or given up), held (times a chunk was kept because the store was full), connects,
        connect_failures, disconnects, subscribe_failures, chunks (handed over), chunk_splits (refused by
        the store, handed over again one by one) and qos0_dropped (held too long while the store was full)."""
        with self._lock:
            return dict(self._stats)

    def _count(self, name: str, delta: int = 1) -> None:
        with self._lock:
            self._stats[name] += delta

    def _settled(self, done: AckCount) -> None:
        if done.settled:
            with self._lock:
                self._stats["pending"] -= done.settled
                self._stats["acked"] += done.sent
                self._stats["ack_skipped"] += done.skipped

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
        self._replays.connected(bool(flags.session_present))
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

    def set_topics(self, topics: Sequence[str], *, timeout: float = 5.0) -> TopicChange:
        """Use ``topics`` (the complete list of filters, e.g. ``Router.mqtt_topics``) from now on.

        On an open connection new filters are subscribed (waiting up to ``timeout`` s for the answer) and
        dropped ones unsubscribed at once; a reconnect subscribes the new list anyway.

        Raises:
            ConfigError: a bad filter (nothing is changed).
        """
        wanted = tuple(dict.fromkeys(validate_filter(t, f"{self._name} topics") for t in topics))
        old, self.topics = self.topics, wanted
        change = TopicChange([t for t in wanted if t not in old], [t for t in old if t not in wanted])
        if self._started and self._client.is_connected():
            if change.removed:
                self._client.unsubscribe(change.removed)
            if change.added:
                self._reload_subscriptions.subscribe(
                    self._client, subscription_list(self.config, change.added), change.added, timeout=timeout)
        if change.added or change.removed:
            _LOG.info("%s: topics now %s (added %s, removed %s)", self._name, list(wanted), change.added,
                      change.removed)
        return change

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
            self._reload_subscriptions.answered(mid, reason_codes)
            return
        refused = [(t, rc) for t, rc in zip(self.topics, reason_codes, strict=False) if rc.is_failure]
        if refused:
            self._count("subscribe_failures", len(refused))
            for topic, code in refused:
                _LOG.error("%s: broker refused subscription to %r: %s", self._name, topic, code)
        # the line tests and operators wait for: from here on a published message reaches this source
        _LOG.info("%s: subscribed to %d filter(s)", self._name, len(self.topics) - len(refused))
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
        self._chunk.hand_over(now=True)  # received on this connection: store them before the broker resends them
        if self._started and was_ready:
            _LOG.warning("%s: connection lost (%s); reconnecting", self._name, reason_code)
        else:
            _LOG.debug("%s: disconnected (%s)", self._name, reason_code)

    def _enqueue(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """``on_message``: queue the message; the end of the loop pass (or a full chunk) hands it over."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers reject these; never let paho's thread die on one
            self._count("handler_errors")
            _LOG.error("%s: message with a topic that is not UTF-8; not acknowledged", self._name)
            return
        retained = bool(msg.retain)
        qos1 = msg.qos > 0  # packet id and DUP flag only mean something for QoS 1 and 2
        dup = bool(msg.dup) and qos1
        replayed = qos1 and self._replays.classify(msg.mid, dup)
        raw = RawMessage(self.config.id, topic, bytes(msg.payload), now_ms(), retained,
                         mid=msg.mid if qos1 else None, dup=dup, replayed=replayed)
        stats = self._stats
        with self._lock:
            stats["received"] += 1
            stats["retained"] += retained
            stats["replayed"] += replayed
            stats["pending"] += 1
            generation = self._generation
        self._chunk.append(Delivery(raw, msg.mid, msg.qos, generation))

    def _end_of_pass(self) -> None:
        """``on_loop_misc``: hand the queue over once the socket is drained, send the queued acks."""
        if self._chunk.due() and not more_to_read(self._client):
            self._chunk.hand_over()
        self._settled(self._acks.flush())
