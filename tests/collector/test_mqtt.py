"""MqttSource against a real Mosquitto: retained flags, late acks, persistent sessions, restarts, LWT,
auth, TLS, MQTT 5. The handler is a recorder (no pipeline, no store)."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from archmon.config import parse_config
from archmon.domain import RawMessage
from archmon.errors import ConfigError, RetryLater
from archmon.paho import stop_network_loop
from collector._mqtt_client import connect_properties
from collector.mqtt import MqttSource
from collector.mqtt_config import MqttSourceConfig, TlsConfig
from collector.sources import configs_of
from tests.fixtures.mosquitto import MosquittoBroker, free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "collector" / "mqtt.sample.toml"
PROTOCOLS = pytest.mark.parametrize("protocol", ["3.1.1", "5"])


# -- helpers ---------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Recorder:
    """A handler that records messages and returns futures, resolved at once unless ``hold``."""

    def __init__(self, hold: bool = False, raise_on: str | None = None) -> None:
        self.hold = hold
        self.raise_on = raise_on
        self.messages: list[RawMessage] = []
        self.futures: list[concurrent.futures.Future[Any]] = []
        self._cond = threading.Condition()

    def __call__(self, raw: RawMessage) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if not self.hold:
            future.set_result(None)
        with self._cond:
            # Both lists change before a waiter wakes: a test that waited for n messages finds n futures.
            self.messages.append(raw)
            if raw.topic != self.raise_on:
                self.futures.append(future)
            self._cond.notify_all()
        if raw.topic == self.raise_on:
            raise RuntimeError("handler bug")
        return future

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RawMessage]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
            assert ok, f"got {len(self.messages)} messages, expected {count}: {self.messages}"
            return list(self.messages)

    def until_payload(self, payload: bytes, timeout: float = 10.0) -> list[RawMessage]:
        """Messages received before ``payload`` arrived (a sentinel published last)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: any(m.payload == payload for m in self.messages), timeout)
            assert ok, f"{payload!r} never arrived: {self.messages}"
            return [m for m in self.messages if m.payload != payload]


class Client:
    """A plain paho client for publishing and watching, with its own network thread."""

    def __init__(self, broker: MosquittoBroker, client_id: str = "", topic: str | None = None) -> None:
        self.seen: list[tuple[bytes, bool]] = []
        self._cond = threading.Condition()
        persistent = bool(client_id)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self._client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self._topic = topic
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if self._topic and not flags.session_present:  # a persistent watcher subscribes once
            client.subscribe(self._topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.seen.append((bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def wait_seen(self, predicate: Callable[[list[tuple[bytes, bool]]], bool], timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.seen), timeout), f"saw only {self.seen}"

    def close(self) -> None:
        self._client.disconnect()
        stop_network_loop(self._client)


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(broker: MosquittoBroker, client_id: str = "", topic: str | None = None) -> Client:
        made.append(Client(broker, client_id, topic))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def sources() -> Iterator[Callable[..., MqttSource]]:
    made: list[MqttSource] = []

    def make(config: MqttSourceConfig, handler: Any, topics: tuple[str, ...] = ("t/#",)) -> MqttSource:
        source = MqttSource(config, handler, site="lab", topics=topics)
        made.append(source)
        source.start()
        return source

    yield make
    for source in made:
        source.stop(timeout=2)


def config_for(broker: MosquittoBroker, **options: Any) -> MqttSourceConfig:
    values: dict[str, Any] = {
        "id": "bus",
        "host": broker.host,
        "port": broker.port,
        "client_id": "archmon-test",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "keepalive_s": 5,
    }
    return MqttSourceConfig(**{**values, **options})


# -- without a broker ------------------------------------------------------------------------------


def test_sample_validates_and_shows_the_real_defaults() -> None:
    text = SAMPLE.read_text(encoding="utf-8")
    config = parse_config(tomllib.loads(text), source=str(SAMPLE))
    (source,) = configs_of(config, MqttSourceConfig)
    assert source.id == "site-broker"
    assert [s.filter for s in source.subscriptions] == ["zigbee2mqtt/+", "tele/+/SENSOR"]
    shown = 0
    models = {"[[sources]]": MqttSourceConfig, "[sources.tls]": TlsConfig}
    section = None
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip()
        model = models.get(section or "")
        if model is None or not line.startswith("# ") or " = " not in line:
            continue
        key, value = line[2:].split(" = ", 1)
        default = model.model_fields[key].default
        if default is not None:  # examples of optional settings are not defaults
            assert tomllib.loads(f"v = {value}")["v"] == default, f"{section} {key} shows {value}"
            shown += 1
    assert shown >= 12


def test_identity_topics_and_bad_options_are_checked_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    config = MqttSourceConfig(id="bus", subscriptions=[{"filter": "a/+", "format": "x"}])  # type: ignore[list-item]
    source = MqttSource(config, Recorder(), site="lab", topics=("z/#", "a/+", "z/#"))
    assert source.client_id == "archmon-lab-bus"
    assert source.status_topic == "archmon/lab/status/bus"
    assert source.topics == ("z/#", "a/+")
    assert not source.connected
    with pytest.raises(ConfigError, match="'a/#/b'"):
        MqttSource(config, Recorder(), site="lab", topics=("a/#/b",))
    monkeypatch.delenv("ARCHMON_TEST_NOPE", raising=False)
    with pytest.raises(ConfigError, match="ARCHMON_TEST_NOPE"):
        MqttSource(config.model_copy(update={"password_env": "ARCHMON_TEST_NOPE"}), Recorder(), site="lab")


def test_unreachable_broker_is_retried_not_raised(sources: Callable[..., MqttSource]) -> None:
    config = MqttSourceConfig(id="bus", port=free_port(), reconnect_min_s=0.05, reconnect_max_s=0.1)
    source = sources(config, Recorder())
    wait_until(lambda: source.stats()["connect_failures"] >= 3, what="three connection attempts")
    assert not source.connected


# -- against mosquitto -----------------------------------------------------------------------------


@pytest.mark.mosquitto
@PROTOCOLS
def test_retained_flag_and_fields(
    protocol: str, mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    pub = clients(mosquitto)
    pub.publish("t/door", b'{"contact": true}', retain=True)
    recorder = Recorder()
    source = sources(config_for(mosquitto, protocol=protocol), recorder)
    assert source.wait_connected(10)
    pub.publish("t/room1", b"21.5")
    first, second = recorder.wait_for(2)
    assert (first.topic, first.payload, first.retained, first.source) == ("t/door", b'{"contact": true}', True, "bus")
    assert (second.topic, second.payload, second.retained) == ("t/room1", b"21.5", False)
    assert abs(second.received_ms - time.time() * 1000) < 60_000
    assert second.mid is not None and not second.dup
    assert source.stats()["retained"] == 1


@pytest.mark.mosquitto
def test_qos0_message_has_no_packet_id(
    mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    recorder = Recorder()
    assert sources(config_for(mosquitto, qos=0), recorder).wait_connected(10)
    clients(mosquitto).publish("t/room1", b"21.5")
    (message,) = recorder.wait_for(1)
    assert (message.payload, message.mid, message.dup) == (b"21.5", None, False)


@pytest.mark.mosquitto
@PROTOCOLS
def test_ack_only_after_the_future_resolves(
    protocol: str, mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    config = config_for(mosquitto, protocol=protocol)
    holding = Recorder(hold=True)
    first = sources(config, holding)
    assert first.wait_connected(10)
    pub = clients(mosquitto)
    for i in range(4):
        pub.publish("t/x", f"m{i}".encode())
    holding.wait_for(4)
    holding.futures[0].set_result(None)
    holding.futures[1].set_result(None)
    holding.futures[2].set_exception(OSError("disk full"))  # m3 stays pending
    wait_until(lambda: first.stats()["acked"] == 2, what="two acks")
    assert first.stats()["handler_failures"] == 1 and first.stats()["pending"] == 1
    first.stop()
    holding.futures[3].set_result(None)  # resolves after its connection is gone: must not be acked
    assert first.stats()["ack_skipped"] == 1 and first.stats()["acked"] == 2

    again = Recorder()
    second = sources(config, again)
    assert second.wait_connected(10)
    pub.publish("t/x", b"end")
    assert sorted(m.payload for m in again.until_payload(b"end")) == [b"m2", b"m3"]


@pytest.mark.mosquitto
def test_ack_is_not_sent_on_a_later_connection(
    mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    config = config_for(mosquitto)
    holding = Recorder(hold=True)
    source = sources(config, holding)
    assert source.wait_connected(10)
    clients(mosquitto).publish("t/x", b"m0")
    holding.wait_for(1)
    mosquitto.restart()  # the session survives; the unacknowledged message comes again
    redelivered = holding.wait_for(2)
    assert [m.payload for m in redelivered] == [b"m0", b"m0"]
    # same packet id, DUP set: what the pipeline's receipts recognise a redelivery by
    assert redelivered[0].mid is not None and redelivered[1].mid == redelivered[0].mid
    assert [m.dup for m in redelivered] == [False, True]
    holding.futures[0].set_result(None)  # durable, but its packet id belongs to the old connection
    assert source.stats()["ack_skipped"] == 1 and source.stats()["acked"] == 0
    holding.futures[1].set_result(None)
    # the ack may go out from paho's thread (queued behind another), so wait for it rather than assume
    wait_until(lambda: source.stats()["acked"] == 1, what="the ack of the redelivered copy")
    source.stop()
    again = Recorder()
    assert sources(config, again).wait_connected(10)
    clients(mosquitto).publish("t/x", b"end")
    assert again.until_payload(b"end") == []


@pytest.mark.mosquitto
@PROTOCOLS
def test_subscribes_even_when_the_broker_reports_a_session(
    protocol: str, mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    config = config_for(mosquitto, protocol=protocol)
    first = sources(config, Recorder())
    assert first.wait_connected(10)
    first.stop()
    # something else took the session over and dropped the subscription; the session stays
    if protocol == "5":
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, config.client_id, protocol=mqtt.MQTTv5)
        props = connect_properties(config)
        intruder.connect(mosquitto.host, mosquitto.port, clean_start=False, properties=props)
    else:
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, config.client_id, clean_session=False)
        intruder.connect(mosquitto.host, mosquitto.port)
    intruder.loop_start()
    try:
        wait_until(intruder.is_connected, what="intruder connected")
        unsubscribed = threading.Event()
        intruder.on_unsubscribe = lambda *_: unsubscribed.set()
        intruder.unsubscribe("t/#")
        assert unsubscribed.wait(10)
    finally:
        intruder.disconnect()
        stop_network_loop(intruder)
    recorder = Recorder()
    second = sources(config, recorder)
    assert second.wait_connected(10)
    clients(mosquitto).publish("t/z", b"after takeover")
    assert recorder.wait_for(1)[0].payload == b"after takeover"


@pytest.mark.mosquitto
def test_handler_exception_is_logged_and_not_acked(
    mosquitto: MosquittoBroker,
    sources: Callable[..., MqttSource],
    clients: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = config_for(mosquitto)
    first = sources(config, Recorder(raise_on="t/bad"))
    assert first.wait_connected(10)
    pub = clients(mosquitto)
    pub.publish("t/bad", b"boom")
    pub.publish("t/good", b"fine")
    wait_until(lambda: first.stats()["acked"] == 1, what="ack of the good message")
    assert first.stats()["handler_errors"] == 1
    assert any("t/bad" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    first.stop()
    again = Recorder()
    assert sources(config, again).wait_connected(10)
    pub.publish("t/x", b"end")
    assert [m.payload for m in again.until_payload(b"end")] == [b"boom"]


@pytest.mark.mosquitto
@PROTOCOLS
def test_messages_sent_while_stopped_arrive_after_start(
    protocol: str, mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    config = config_for(mosquitto, protocol=protocol)
    first = sources(config, Recorder())
    assert first.wait_connected(10)
    first.stop()
    pub = clients(mosquitto)
    for i in range(3):
        pub.publish("t/y", f"p{i}".encode())
    recorder = Recorder()
    assert sources(config, recorder).wait_connected(10)
    got = recorder.wait_for(3)
    assert [(m.payload, m.retained) for m in got] == [(b"p0", False), (b"p1", False), (b"p2", False)]


@pytest.mark.mosquitto
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_broker_restart_reconnects_resubscribes_and_announces(
    how: str, mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    """``stop`` keeps the sessions (persistence); ``kill`` loses them, so only resubscribing helps."""
    recorder = Recorder()
    source = sources(config_for(mosquitto), recorder)
    assert source.wait_connected(10)
    watcher = clients(mosquitto, client_id="watcher", topic=source.status_topic)
    watcher.wait_seen(lambda seen: (b"online", True) in seen or (b"online", False) in seen)
    before = len(watcher.seen)

    if how == "stop":
        mosquitto.restart()
    else:
        mosquitto.kill()
        mosquitto.start()
    wait_until(lambda: source.stats()["connects"] >= 2 and source.connected, what="reconnect")
    assert source.stats()["disconnects"] >= 1
    if how == "stop":  # a live (not retained) birth reaches the watcher's persisted subscription
        watcher.wait_seen(lambda seen: (b"online", False) in seen[before:])
    else:  # the watcher subscribes again and finds the new retained birth (or sees it live)
        watcher.wait_seen(lambda seen: any(payload == b"online" for payload, _ in seen[before:]))
    clients(mosquitto).publish("t/after", b"1")
    assert recorder.wait_for(1)[-1].topic == "t/after"


_CHILD = """
import json, sys, threading, concurrent.futures
from collector.mqtt_config import MqttSourceConfig
from collector._mqtt_client import connect_properties
from collector.mqtt import MqttSource
def done(raw):
    f = concurrent.futures.Future(); f.set_result(None); return f
source = MqttSource(MqttSourceConfig(**json.loads(sys.argv[1])), done, site="lab", topics=["t/#"])
source.start()
print("ready" if source.wait_connected(10) else "failed", flush=True)
threading.Event().wait()
"""


@pytest.mark.mosquitto
def test_will_says_offline_when_the_process_dies(mosquitto: MosquittoBroker, clients: Callable[..., Client]) -> None:
    watcher = clients(mosquitto, client_id="watcher", topic="archmon/lab/status/bus")
    config = config_for(mosquitto).model_dump(mode="json")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(config)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        watcher.wait_seen(lambda seen: any(payload == b"online" for payload, _ in seen))
        child.kill()  # no DISCONNECT: the broker publishes the will
        child.wait(10)
        watcher.wait_seen(lambda seen: bool(seen) and seen[-1] == (b"offline", False))
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    late = clients(mosquitto, topic="archmon/lab/status/bus")
    late.wait_seen(lambda seen: seen == [(b"offline", True)])


@pytest.mark.mosquitto
def test_clean_stop_publishes_offline(
    mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    source = sources(config_for(mosquitto), Recorder())
    assert source.wait_connected(10)
    source.stop()
    assert not source.connected
    late = clients(mosquitto, topic=source.status_topic)
    late.wait_seen(lambda seen: seen == [(b"offline", True)])


@pytest.mark.mosquitto
def test_wrong_password_is_counted_and_retried_right_one_connects(
    mosquitto_factory: Callable[..., MosquittoBroker],
    sources: Callable[..., MqttSource],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = mosquitto_factory(allow_anonymous=False, users={"archmon": "right-Pw-1"})
    config = config_for(broker, username="archmon", password_env="ARCHMON_TEST_MQTT_PW")
    monkeypatch.setenv("ARCHMON_TEST_MQTT_PW", "wrong-Pw-2")
    refused = sources(config, Recorder())
    wait_until(lambda: refused.stats()["connect_failures"] >= 3, what="repeated refused logins")
    assert not refused.connected and refused.stats()["connects"] == 0
    refused.stop()
    monkeypatch.setenv("ARCHMON_TEST_MQTT_PW", "right-Pw-1")
    accepted = sources(config, Recorder())
    assert accepted.wait_connected(10)
    assert accepted.stats()["connect_failures"] == 0
    assert "Pw-" not in caplog.text


@pytest.mark.mosquitto
@pytest.mark.parametrize("client_cert", [False, True])
def test_tls_with_the_generated_ca(
    client_cert: bool,
    mosquitto_factory: Callable[..., MosquittoBroker],
    sources: Callable[..., MqttSource],
    clients: Callable[..., Client],
) -> None:
    broker = mosquitto_factory(tls=True, require_client_cert=client_cert)
    tls = {"enabled": True, "ca_file": broker.ca_file}
    if client_cert:
        tls |= {"cert_file": broker.client_cert, "key_file": broker.client_key}
    recorder = Recorder()
    source = sources(config_for(broker, port=broker.tls_port, tls=tls), recorder)
    assert source.wait_connected(10)
    clients(broker).publish("t/tls", b"secret")
    assert recorder.wait_for(1)[0].payload == b"secret"


@pytest.mark.mosquitto
# paho 2.2 does not close the socket when the TLS handshake fails (Client._ssl_wrap_socket); the
# garbage collector does, with a ResourceWarning that pytest reports as unraisable.
@pytest.mark.filterwarnings("ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning")
def test_tls_refuses_a_broker_it_cannot_verify(
    mosquitto_factory: Callable[..., MosquittoBroker], sources: Callable[..., MqttSource]
) -> None:
    broker = mosquitto_factory(tls=True)
    config = config_for(broker, client_id="other", port=broker.tls_port, tls={"enabled": True})  # system CAs
    source = sources(config, Recorder())
    wait_until(lambda: source.stats()["connect_failures"] >= 2, what="failed TLS handshakes")
    assert not source.connected and source.stats()["connects"] == 0


# -- grouped handling (batch_handler) --------------------------------------------------------------


class ChunkRecorder:
    """A batch handler that records chunks; a chunk holding ``refuse`` fails like a store constraint error.

    ``hold``: futures stay unresolved; ``gate``: the first call waits for it (holding paho's network thread,
    so the next messages wait in the socket and are then read in one go).
    """

    def __init__(
        self, *, hold: bool = False, refuse: bytes | None = None, gate: threading.Event | None = None,
        raise_on: bytes | None = None,
    ) -> None:
        self.hold, self.refuse, self.gate, self.raise_on = hold, refuse, gate, raise_on
        self.chunks: list[list[bytes]] = []
        self.futures: list[concurrent.futures.Future[Any]] = []
        self.entered = threading.Event()

    def __call__(self, messages: list[RawMessage]) -> concurrent.futures.Future[Any]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
            self.gate = None
        payloads = [m.payload for m in messages]
        self.chunks.append(payloads)
        if self.raise_on in payloads:
            raise RuntimeError("batch handler bug")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self.refuse in payloads:
            future.set_exception(sqlite3.IntegrityError("CHECK constraint failed"))
        elif not self.hold:
            future.set_result(None)
        self.futures.append(future)
        return future


def redelivered_after_restart(config: MqttSourceConfig, sources: Callable[..., MqttSource], pub: Any) -> list[bytes]:
    again = Recorder()
    assert sources(config, again).wait_connected(10)
    pub.publish("t/x", b"end")
    return sorted(m.payload for m in again.until_payload(b"end"))


def test_handler_or_batch_handler_not_both() -> None:
    config = MqttSourceConfig(id="bus")
    with pytest.raises(TypeError, match="exactly one"):
        MqttSource(config, site="lab")
    with pytest.raises(TypeError, match="exactly one"):
        MqttSource(config, Recorder(), batch_handler=ChunkRecorder(), site="lab")


@pytest.mark.mosquitto
def test_batch_handler_acks_a_chunk_only_after_its_future_resolves(
    mosquitto: MosquittoBroker, clients: Callable[..., Client]
) -> None:
    config = config_for(mosquitto)
    gate = threading.Event()
    holding = ChunkRecorder(hold=True, gate=gate)
    source = MqttSource(config, batch_handler=holding, max_chunk=3, site="lab", topics=("t/#",))
    source.start()
    try:
        assert source.wait_connected(10)
        pub = clients(mosquitto)
        pub.publish("t/x", b"first")
        assert holding.entered.wait(10)
        for i in range(5):
            # Client.publish waits for the PUBACK, and Mosquitto forwards a QoS 1 message to subscribers
            # before acknowledging it: the messages now wait in the blocked source's socket.
            pub.publish("t/x", f"m{i}".encode())
        gate.set()
        wait_until(lambda: source.stats()["received"] == 6, what="six messages received")
        wait_until(lambda: len(holding.futures) == 3, what="three chunks")
        assert holding.chunks == [[b"first"], [b"m0", b"m1", b"m2"], [b"m3", b"m4"]]  # max_chunk, arrival order
        assert source.stats()["acked"] == 0 and source.stats()["pending"] == 6
        holding.futures[1].set_result(None)
        wait_until(lambda: source.stats()["acked"] == 3, what="acks of the second chunk")
        assert source.stats()["pending"] == 3 and source.stats()["chunks"] == 3
        holding.futures[2].set_exception(RetryLater("store writer closed"))  # not refused: no split
        assert source.stats()["handler_failures"] == 2 and source.stats()["pending"] == 1
        assert source.stats()["chunk_splits"] == 0
    finally:
        source.stop(timeout=2)
    holding.futures[0].set_result(None)  # resolves after its connection is gone: not acknowledged
    assert source.stats()["ack_skipped"] == 1 and source.stats()["acked"] == 3
    made: list[MqttSource] = []

    def sources(config: MqttSourceConfig, handler: Any) -> MqttSource:
        made.append(MqttSource(config, handler, site="lab", topics=("t/#",)))
        made[-1].start()
        return made[-1]

    try:
        assert redelivered_after_restart(config, sources, pub) == [b"first", b"m3", b"m4"]
    finally:
        for s in made:
            s.stop(timeout=2)


@pytest.mark.mosquitto
def test_refused_chunk_is_handed_over_again_one_by_one(
    mosquitto: MosquittoBroker,
    sources: Callable[..., MqttSource],
    clients: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = config_for(mosquitto)
    gate = threading.Event()
    recorder = ChunkRecorder(refuse=b"bad", gate=gate)
    source = MqttSource(config, batch_handler=recorder, site="lab", topics=("t/#",))
    source.start()
    try:
        assert source.wait_connected(10)
        pub = clients(mosquitto)
        pub.publish("t/x", b"first")
        assert recorder.entered.wait(10)
        for payload in (b"m0", b"bad", b"m2", b"m3"):
            pub.publish("t/x", payload)  # acknowledged by the broker: already in the blocked source's socket
        gate.set()
        wait_until(lambda: source.stats()["acked"] == 4, what="acks of all but the bad message")
        assert recorder.chunks == [[b"first"], [b"m0", b"bad", b"m2", b"m3"], [b"m0"], [b"bad"], [b"m2"], [b"m3"]]
        stats = source.stats()
        assert stats["chunk_splits"] == 1 and stats["handler_failures"] == 1 and stats["pending"] == 0
        assert any("refused a chunk of 4" in r.getMessage() for r in caplog.records)
    finally:
        source.stop(timeout=2)
    assert redelivered_after_restart(config, sources, pub) == [b"bad"]


@pytest.mark.mosquitto
def test_batch_handler_exception_is_counted_and_not_acked(
    mosquitto: MosquittoBroker, sources: Callable[..., MqttSource], clients: Callable[..., Client]
) -> None:
    config = config_for(mosquitto)
    source = MqttSource(config, batch_handler=ChunkRecorder(raise_on=b"boom"), site="lab", topics=("t/#",))
    source.start()
    try:
        assert source.wait_connected(10)
        pub = clients(mosquitto)
        pub.publish("t/bad", b"boom")
        wait_until(lambda: source.stats()["handler_errors"] == 1, what="the failed chunk")  # alone in it
        pub.publish("t/good", b"fine")
        wait_until(lambda: source.stats()["acked"] == 1, what="ack of the good message")
        assert source.stats()["handler_errors"] == 1 and source.stats()["pending"] == 0
    finally:
        source.stop(timeout=2)
    assert redelivered_after_restart(config, sources, pub) == [b"boom"]


# -- replays without DUP, packet ids ---------------------------------------------------------------


def test_packet_id_ahead_within_half_a_cycle() -> None:
    from collector._mqtt_session import packet_id_ahead

    assert packet_id_ahead(8, 7) and packet_id_ahead(7 + 32_767, 7)
    assert not packet_id_ahead(7, 7) and not packet_id_ahead(6, 7) and not packet_id_ahead(7 + 32_768, 7)
    assert packet_id_ahead(3, 65_530) and not packet_id_ahead(65_530, 3)  # across the wrap to 1


def test_replay_watch_marks_the_start_of_a_resumed_session_until_a_packet_id_comes_ahead() -> None:
    from collector._mqtt_session import ReplayWatch

    watch = ReplayWatch()
    watch.connected(session_present=True)  # a process's first connection: nothing to compare with
    assert [watch.classify(mid, False) for mid in (5, 6, 7, 8)] == [False] * 4
    watch.connected(session_present=True)  # the broker crashed and restored older state
    assert [watch.classify(mid, False) for mid in (6, 7, 8)] == [True] * 3  # not ahead of 8
    assert watch.classify(4, True) is False  # DUP: a redelivery the pipeline matches itself
    assert [watch.classify(mid, False) for mid in (9, 3)] == [False, False]  # 9 ends the run; later is new
    watch.connected(session_present=False)  # no session: the broker sends nothing again
    assert watch.classify(2, False) is False
    watch.connected(session_present=True)  # compared with the newest id now, 2
    assert watch.classify(1, False) is True and watch.classify(3, False) is False


# -- what the source holds while the store cannot take messages -----------------------------------


def test_held_queue_keeps_arrival_order_and_drops_the_oldest_qos0() -> None:
    from collector._mqtt_acks import Delivery
    from collector._mqtt_chunks import HeldQueue

    held = HeldQueue()
    for i, qos in enumerate([1, 0, 0, 1, 0, 1]):
        held.append(Delivery(RawMessage("b", "t", f"m{i}".encode(), 0), i, qos, 1))
    dropped = held.drop_oldest_qos0()
    assert dropped is not None and dropped.message.payload == b"m1"
    chunk = held.take(3)
    assert [d.message.payload for d in chunk] == [b"m0", b"m2", b"m3"]
    held.put_back(chunk)  # the handler could not take them: back at the head, in order
    assert [d.message.payload for d in held.take(10)] == [b"m0", b"m2", b"m3", b"m4", b"m5"]
    assert held.drop_oldest_qos0() is None and len(held) == 0


class StoreFull:
    """A batch handler whose store is full (``RetryLater`` at once) until ``open`` is set."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.taken: list[RawMessage] = []

    def __call__(self, messages: list[RawMessage]) -> concurrent.futures.Future[Any]:
        if not self.open.is_set():
            raise RetryLater("store writer queue full")
        self.taken.extend(messages)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(None)
        return future


def _publisher(broker: MosquittoBroker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


@pytest.mark.mosquitto
def test_qos0_messages_held_for_a_full_store_are_bounded_and_qos1_ones_never_dropped(
    mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Many devices publish at QoS 0, and no broker window bounds those: 3,000 of them while the store is full
    leave at most two chunks held (the oldest dropped and counted); the QoS 1 ones all arrive afterwards."""
    store = StoreFull()
    source = MqttSource(config_for(mosquitto), batch_handler=store, max_chunk=50, site="lab", topics=("t/#",))
    source.start()
    flood = _publisher(mosquitto)
    try:
        assert source.wait_connected(10)
        for info in [flood.publish(f"t/{i % 10}", f"q0-{i}", qos=0) for i in range(3000)]:
            info.wait_for_publish(10)
        wait_until(lambda: source.stats()["received"] == 3000, what="the QoS 0 flood", timeout=30)
        for info in [flood.publish("t/qos1", f"q1-{i}", qos=1) for i in range(30)]:
            info.wait_for_publish(10)
        wait_until(lambda: source.stats()["received"] == 3020, what="a broker window of QoS 1 messages")
        stats = source.stats()
        assert stats["pending"] == 100 and stats["qos0_dropped"] == 2920 and stats["acked"] == 0
        assert sum("dropping the oldest QoS 0" in r.getMessage() for r in caplog.records) == 1
        store.open.set()  # the store takes messages again
        wait_until(lambda: source.stats()["acked"] == 30, what="every QoS 1 message stored and acknowledged")
        wait_until(lambda: source.stats()["pending"] == 0, what="nothing held")
        kept = [m.payload.decode() for m in store.taken]
        assert kept == [f"q0-{i}" for i in range(2920, 3000)] + [f"q1-{i}" for i in range(30)]  # the newest, in order
    finally:
        stop_network_loop(flood)
        flood.disconnect()
        source.stop(timeout=2)


@pytest.mark.mosquitto
@PROTOCOLS
def test_mqtt5_receive_maximum_bounds_what_a_stalled_store_holds(
    protocol: str, mosquitto_factory: Callable[..., MosquittoBroker]
) -> None:
    """A broker without an in-flight limit (``max_inflight_messages 0``) sends an MQTT 3.1.1 client its whole
    queue; an MQTT 5 client says how many it takes (Receive Maximum: twice the chunk, at least 100)."""
    broker = mosquitto_factory(max_inflight_messages=0)
    store = StoreFull()
    config = config_for(broker, protocol=protocol)
    source = MqttSource(config, batch_handler=store, max_chunk=60, site="lab", topics=("t/#",))
    source.start()
    flood = _publisher(broker)
    try:
        assert source.wait_connected(10)
        for info in [flood.publish(f"t/{i}", str(i), qos=1) for i in range(300)]:
            info.wait_for_publish(10)  # Mosquitto forwards to subscribers before acknowledging the publisher
        # Everything the broker sent before answering a SUBSCRIBE has been read once its answer is: a retained
        # QoS 0 message on the new filter follows the answer (a QoS 0 one waits for no in-flight place).
        flood.publish("sync/x", b"now", qos=0, retain=True)
        flood.publish("nobody/listens", b"", qos=1).wait_for_publish(10)  # the broker took what came before it
        source.set_topics(["t/#", "sync/#"])
        wait_until(lambda: source.stats()["retained"] == 1, what="the message after the subscription's answer")
        assert source.stats()["received"] == (121 if protocol == "5" else 301)
        store.open.set()
        wait_until(lambda: source.stats()["acked"] == 300, what="all stored and acknowledged", timeout=30)
    finally:
        stop_network_loop(flood)
        flood.disconnect()
        source.stop(timeout=2)


def test_receive_maximum_is_sent_with_mqtt5_only() -> None:
    five = connect_properties(MqttSourceConfig(id="b", protocol="5"), receive_maximum=1000)
    assert five is not None and five.ReceiveMaximum == 1000 and five.SessionExpiryInterval == 7 * 86400
    assert connect_properties(MqttSourceConfig(id="b", protocol="5"), receive_maximum=10**6).ReceiveMaximum == 65_535
    assert connect_properties(MqttSourceConfig(id="b"), receive_maximum=1000) is None


# -- acknowledgements sent from the writer's thread ------------------------------------------------


@pytest.mark.mosquitto
def test_acks_queued_while_the_woken_network_thread_ran_are_sent_by_that_pass(mosquitto: MosquittoBroker) -> None:
    """The thread resolving a chunk sends its first PUBACK (which wakes paho's network thread) and queues the rest.
    On a loaded machine the network thread may run its whole loop pass before that thread goes on: its flush must
    then wait and send the rest, not return empty-handed and leave them for a pass that only a select timeout
    brings (a second per round with paho's timeout, what stretched the no-loss test past its 30 s)."""
    from collector._mqtt_acks import AckCount, AckSender, Delivery
    from collector._mqtt_client import LoopClient

    passed = threading.Event()

    class WriterDescheduled(LoopClient):
        stall = False

        def loop_forever(self, timeout: float = 1.0, retry_first_connection: bool = False) -> mqtt.MQTTErrorCode:
            # no idle pass for a minute: only a wake-up (or traffic) runs a pass and its flush
            return super().loop_forever(timeout=60.0, retry_first_connection=retry_first_connection)

        def loop_misc(self) -> mqtt.MQTTErrorCode:
            rc = super().loop_misc()
            passed.set()
            return rc

        def ack(self, mid: int, qos: int) -> mqtt.MQTTErrorCode:
            rc = super().ack(mid, qos)
            if self.stall and threading.current_thread() is not self._thread:
                self.stall = False
                passed.clear()
                # let the woken network thread run a whole pass; if its flush waits for the sender (it must),
                # the pass cannot end until this call returns: go on after a while
                passed.wait(1.0)
            return rc

    received: list[mqtt.MQTTMessage] = []
    client = WriterDescheduled(mqtt.CallbackAPIVersion.VERSION2, client_id="acks", clean_session=False,
                               manual_ack=True)
    client.on_message = lambda _c, _u, message: received.append(message)
    sender = AckSender(client, lambda: 1, "test")
    flushed: list[AckCount] = []
    client.on_loop_misc = lambda: flushed.append(sender.flush())
    client.connect(mosquitto.host, mosquitto.port, keepalive=120)
    client.subscribe("t/#", qos=1)
    client.loop_start()
    publisher = _publisher(mosquitto)
    try:
        for info in [publisher.publish("t/x", f"m{i}", qos=1) for i in range(3)]:
            info.wait_for_publish(10)
        wait_until(lambda: len(received) == 3, what="three unacknowledged messages")
        deliveries = [Delivery(RawMessage("b", m.topic, m.payload, 0), m.mid, 1, 1) for m in received]
        client.stall = True
        assert sender.durable(deliveries).sent == 1  # the first from this thread, the rest queued
        wait_until(lambda: sum(count.sent for count in flushed) == 2, what="the queued acks sent by the woken pass")
    finally:
        stop_network_loop(publisher)
        publisher.disconnect()
        client.disconnect()
        stop_network_loop(client)
