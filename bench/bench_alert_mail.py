"""Alert latency: a smoke reading published over MQTT → the e-mail accepted by a local SMTP server.

DESIGN.md §10 / issue 11: p99 ≤ 2 × a bare path. Both paths start when the bench publishes the smoke
message to a real Mosquitto (QoS 1) and end when the loopback SMTP server (aiosmtpd) is handed the message
(``handle_DATA``, before its ``250`` reply):

- **archmon**: ``archmon.app.Service`` (in this process): the MQTT source, decode, validate, the durable
  commit, the alert feed's urgent lane, the alert engine (``fired`` request committed), the notifier
  (delivery committed, marked sending), the SMTP channel;
- **bare**: a paho subscriber on its own topic that parses the JSON and, on ``smoke: true``, sends an
  e-mail of the same size with ``smtplib`` itself: no store, no engine, no outbox.

Trials alternate (a bare trial, an archmon trial that then clears the smoke and waits for its recovery
mail, so every trial opens a new alert); the first ten are a warm-up.

Run: ``.venv/bin/python bench/bench_alert_mail.py [--trials 100] [--dir DIR] [--profile FILE]``
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archmon.config import load_config
from bench._configs import write_smoke_site
from bench._suite import BenchResult, Scale, ratio_row
from tests.fixtures.mosquitto import MosquittoBroker, free_port

TIMEOUT_S = 30.0
SUBJECT = "【告警·紧急】#1 A1 smoke1：检测到烟雾！"


class _Handler:
    def __init__(self, arrived: queue.Queue[tuple[str, float]]) -> None:
        self.arrived = arrived

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.arrived.put((envelope.rcpt_tos[0], time.perf_counter()))
        return "250 2.0.0 Ok: queued"


class MailServer:
    """aiosmtpd on loopback; notes when each message was handed over, by recipient."""

    def __init__(self) -> None:
        self.arrived: queue.Queue[tuple[str, float]] = queue.Queue()
        self.port = free_port()
        self.controller = Controller(_Handler(self.arrived), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def next(self, rcpt: str) -> float:
        """When the next message to ``rcpt`` arrived (others are skipped)."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            got, at = self.arrived.get(timeout=max(0.01, deadline - time.monotonic()))
            if got == rcpt:
                return at

    def close(self) -> None:
        self.controller.stop()


def _config(folder: Path, broker: int, smtp: int) -> Path:
    return write_smoke_site(folder, broker_port=broker, client_id="bench-alert-mail", channel="mail",
                            channel_toml=f'type = "smtp"\nhost = "127.0.0.1"\nport = {smtp}\nsecurity = "none"\n'
                                         'from = "archmon@bench.example"',
                            contact_toml='email = "zhang@bench.example"')


class Bare:
    """The bare path: paho on ``zigbee2mqtt/bare``; on ``smoke: true`` it sends the e-mail with smtplib."""

    def __init__(self, broker: int, smtp: int) -> None:
        self.smtp = smtp
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-alert-mail-bare")
        self.client.on_connect = lambda c, *_: c.subscribe("zigbee2mqtt/bare", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker)
        self.client.loop_start()
        if not self.ready.wait(TIMEOUT_S):
            raise RuntimeError("the bare subscriber's SUBSCRIBE was not answered")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not json.loads(msg.payload).get("smoke"):
            return
        mail = EmailMessage()
        mail["Subject"] = SUBJECT
        mail["From"] = "bare@bench.example"
        mail["To"] = "bare@bench.example"
        mail.set_content(f"{SUBJECT}\n开始于 2025-01-01 12:00 +08:00\n站点: bench\n房间: A1\n传感器: smoke1\n"
                         "回复 1 或“确认 1”确认", charset="utf-8")
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=TIMEOUT_S) as smtp:
            smtp.send_message(mail)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Latencies(NamedTuple):
    """Seconds per trial, publish → SMTP DATA, of each path."""

    archmon: list[float]
    bare: list[float]


def measure(trials: int, folder: Path, profile: Path | None = None) -> Latencies:
    """Alternate bare and archmon trials (the first ten of each pair are a warm-up)."""
    from archmon.app import Service

    broker = MosquittoBroker(folder / "broker").start()
    mail = MailServer()
    bare = Bare(broker.port, mail.port)
    service = Service(load_config(_config(folder, broker.port, mail.port)))
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-alert-mail-pub")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    ts = int(time.time() * 1000) - 3_600_000
    out = Latencies([], [])
    profiler = None
    try:
        service.start()
        if not all(source.wait_connected(TIMEOUT_S) for source in service.sources().values()):
            raise RuntimeError("the service did not connect to the broker")

        def publish(topic: str, smoke: bool) -> float:
            nonlocal ts
            ts += 1000
            at = time.perf_counter()
            publisher.publish(topic, json.dumps({"smoke": smoke, "last_seen": ts}), qos=1)
            return at

        publish("zigbee2mqtt/smoke1", False)  # the detector's first state
        for trial in range(trials + 10):
            if trial == 10 and profile is not None:
                from pyinstrument import Profiler  # optional: only with --profile

                profiler = Profiler(async_mode="disabled")
                profiler.start()
            at = publish("zigbee2mqtt/bare", True)
            took_bare = mail.next("bare@bench.example") - at
            at = publish("zigbee2mqtt/smoke1", True)
            took = mail.next("zhang@bench.example") - at
            publish("zigbee2mqtt/smoke1", False)
            mail.next("zhang@bench.example")  # the recovery
            if trial >= 10:
                out.bare.append(took_bare)
                out.archmon.append(took)
    finally:
        if profiler is not None:
            profiler.stop()
            assert profile is not None
            profile.write_text(profiler.output_text(unicode=True, show_all=False), encoding="utf-8")
        publisher.loop_stop()
        publisher.disconnect()
        bare.close()
        service.stop()
        mail.close()
        broker.close()
    return out


def p(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


SIZES = {"toy": 3, "quick": 60, "full": 300}  # trials of each path


def suite(scale: Scale, folder: Path) -> BenchResult:
    """p50 and p99 of both paths; the goal is on the p99 ratio."""
    trials = SIZES[scale]
    got = measure(trials, folder)
    label = "bare paho subscriber + smtplib"
    rows = [
        ratio_row("smoke published → e-mail accepted, p50", statistics.median(got.archmon) * 1000,
                  statistics.median(got.bare) * 1000, "ms", label),
        ratio_row("smoke published → e-mail accepted, p99", p(got.archmon, 0.99) * 1000, p(got.bare, 0.99) * 1000,
                  "ms", label, goal="ratio ≤ 2", at_most=2.0),
    ]
    return BenchResult("alerts", rows, sizes={"trials": trials},
                       notes=[f"max {max(got.archmon) * 1000:.1f} ms archmon, {max(got.bare) * 1000:.1f} ms bare"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials of each path")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database (default: a temp dir)")
    parser.add_argument("--profile", type=Path, help="pyinstrument the trials (needs pyinstrument) into FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        got = measure(args.trials, Path(tmp), args.profile)
    for name, values in (("bare (paho + smtplib)", got.bare), ("archmon (Service → SMTP channel)", got.archmon)):
        print(f"{name:34s} {len(values)} trials: p50 {statistics.median(values) * 1000:7.2f} ms, "
              f"p99 {p(values, 0.99) * 1000:7.2f} ms, max {max(values) * 1000:7.2f} ms")
    ratio = p(got.archmon, 0.99) / p(got.bare, 0.99)
    print(f"p99 ratio archmon / bare: {ratio:.2f} (goal ≤ 2: {'met' if ratio <= 2 else 'NOT met'}); "
          f"p50 ratio {statistics.median(got.archmon) / statistics.median(got.bare):.2f}")


if __name__ == "__main__":
    main()
