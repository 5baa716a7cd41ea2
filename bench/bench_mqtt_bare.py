"""Throughput of a bare paho-mqtt subscriber on a local Mosquitto: the baseline for the pipeline bench.

The messages are queued first in the subscriber's persistent session (the subscriber subscribes,
disconnects, a publisher sends N QoS 1 messages), then the subscriber connects again and the clock
runs from CONNACK to the last message. This measures what the subscriber side can drain, not how
fast one publisher can publish. The pipeline bench can reuse
``start_broker``, ``prequeue`` and ``zigbee_payload`` so both runs see the same broker settings and
the same messages.

Run: ``.venv/bin/python bench/bench_mqtt_bare.py [--messages 50000] [--qos 1] [--inflight 1000]``
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.mosquitto import MosquittoBroker

__all__ = ["BareResult", "measure_bare", "prequeue", "start_broker", "zigbee_payload"]

TOPIC_FILTER = "zigbee2mqtt/+"
SENSORS = 100


@dataclass(frozen=True, slots=True)
class BareResult:
    """One measurement: messages drained and the seconds it took."""

    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


def zigbee_payload(i: int) -> tuple[str, bytes]:
    """The i-th message: a Zigbee2MQTT climate sensor state, on one of ``SENSORS`` topics."""
    body = {"temperature": 18 + (i % 70) / 10, "humidity": 40 + (i % 200) / 10, "battery": 97, "linkquality": 120}
    return f"zigbee2mqtt/bench-{i % SENSORS:03d}", json.dumps(body).encode()


def start_broker(inflight: int = 1000) -> MosquittoBroker:
    """A temporary Mosquitto with persistence and room for the queued messages."""
    return MosquittoBroker(max_inflight_messages=inflight, max_queued_messages=1_000_000).start()


def _client(client_id: str, *, clean: bool) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)


def prequeue(host: str, port: int, client_id: str, messages: int, qos: int = 1) -> None:
    """Create ``client_id``'s persistent session subscribed to the bench topics and queue ``messages``."""
    subscribed = threading.Event()
    sub = _client(client_id, clean=False)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(host, port)
    sub.loop_start()
    sub.subscribe(TOPIC_FILTER, qos=qos)
    if not subscribed.wait(30):
        raise RuntimeError("the bench subscriber's SUBSCRIBE was not answered")
    sub.disconnect()
    sub.loop_stop()
    pub = _client("", clean=True)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(host, port)
    pub.loop_start()
    last = None
    for i in range(messages):
        topic, payload = zigbee_payload(i)
        last = pub.publish(topic, payload, qos=qos)
    if last is not None:
        last.wait_for_publish(300)
    pub.disconnect()
    pub.loop_stop()


def measure_bare(host: str, port: int, client_id: str, messages: int, timeout: float = 300.0) -> BareResult:
    """Connect ``client_id`` (its session holds ``messages``) and time until all have arrived."""
    done = threading.Event()
    count = 0
    started = 0.0

    def on_connect(client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        nonlocal started
        started = time.perf_counter()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        json.loads(msg.payload)  # a subscriber that does nothing at all would flatter the baseline
        count += 1
        if count >= messages:
            done.set()

    sub = _client(client_id, clean=False)
    sub.on_connect = on_connect
    sub.on_message = on_message
    sub.connect(host, port)
    sub.loop_start()
    try:
        if not done.wait(timeout):
            raise RuntimeError(f"only {count} of {messages} messages arrived in {timeout} s")
        elapsed = time.perf_counter() - started
    finally:
        sub.disconnect()
        sub.loop_stop()
    return BareResult(messages, elapsed)


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print messages/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--inflight", type=int, default=1000, help="mosquitto max_inflight_messages")
    parser.add_argument("--runs", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args(argv)
    broker = start_broker(args.inflight)
    try:
        results = []
        for run in range(args.runs):
            client_id = f"bench-bare-{run}"
            prequeue(broker.host, broker.port, client_id, args.messages, args.qos)
            results.append(measure_bare(broker.host, broker.port, client_id, args.messages))
            print(f"run {run + 1}: {results[-1].rate:,.0f} messages/s", file=sys.stderr)
        best = max(results, key=lambda r: r.rate)
        print(
            f"bare paho subscriber: {best.rate:,.0f} messages/s "
            f"({args.messages} messages, QoS {args.qos}, max_inflight_messages {args.inflight})"
        )
    finally:
        broker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
