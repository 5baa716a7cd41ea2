"""Smoke-to-notification latency of ``archmon run``'s service against a bare path, in one run.

DESIGN.md §10: smoke-to-notification p99 ≤ 2 × a bare path. Both paths start when a smoke reading is
*stored* (the store writer's listener is called after the commit) and end when an HTTP POST reaches a
loopback webhook server (its handler's first line):

- **notify**: the whole path of the service: the alert engine judges the stored reading (its own thread),
  commits the ``fired`` request, the event hub wakes the notifier, which expands the request into a
  delivery (committed), marks it sending (committed), renders the message and POSTs it through the
  webhook channel;
- **bare**: the same POST (the same webhook channel, the same message size) made directly by a thread
  woken by the writer's listener, without alert engine, outbox or notifier.

Readings come over MQTT from a real Mosquitto (``tests/fixtures/mosquitto.py``), as in production. Trials
alternate: a bare trial stores a ``smoke = 0`` reading (no alert: only the bare POST runs), a notify trial a
``smoke = 1`` reading (the alert fires; the bare path is idle), then clears it and waits for the recovery
message, so every trial opens a new alert. Every commit is durable (WAL, ``synchronous=FULL``): the notify
path has three commits more than the bare one, so the ratio depends on the disk's fsync.

Run: ``.venv/bin/python bench/bench_notify.py [--trials 100] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.notify.channels import OutgoingMessage, Recipient
from alerts.notify.channels.webhook import WebhookChannel, WebhookOptions
from archmon.config import load_config
from bench._configs import write_smoke_site
from tests.fixtures.mosquitto import MosquittoBroker

TIMEOUT_S = 30.0


class Webhook:
    """A loopback webhook server that notes when each request arrived (``time.perf_counter``), by path."""

    def __init__(self) -> None:
        self.arrived: queue.Queue[tuple[str, float, dict[str, Any]]] = queue.Queue()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                at = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = b'{"errcode": 0}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                owner.arrived.put((self.path, at, json.loads(body)))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def next(self, path: str, kind: str | None = None) -> float:
        """When the next request to ``path`` (about an alert of ``kind``) arrived."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            got_path, at, body = self.arrived.get(timeout=max(0.01, deadline - time.monotonic()))
            alerts = body.get("alerts") or [{}]
            if got_path == path and (kind is None or alerts[0].get("kind") == kind):
                return at

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(folder: Path, broker: int, url: str) -> Path:
    return write_smoke_site(folder, broker_port=broker, client_id="bench-notify", channel="hook",
                            channel_toml=f'type = "webhook"\nurl = "{url}/notify"',
                            contact_toml='phone = "+8613800000001"')


class Bare:
    """The bare path: a thread that makes the webhook POST as soon as the writer's listener says "stored"."""

    def __init__(self, url: str) -> None:
        self.channel = WebhookChannel("bare", WebhookOptions(url=f"{url}/bare"))
        subject = "【告警·紧急】#1 A1 smoke1：检测到烟雾！"
        self.message = OutgoingMessage(
            subject=subject, text=f"{subject}\n开始于 2025-01-01 12:00 +08:00\n站点: bench\n回复 1 或“确认 1”确认",
            data={"site": "bench", "alerts": [{"id": 1, "kind": "fired", "rule": "smoke", "room": "A1",
                                               "sensor": "smoke1", "severity": "critical"}]}, alert_ids=(1,))
        self.go = threading.Event()
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.go.wait(0.2):
                self.go.clear()
                self.channel.send(self.message, Recipient("bare"))


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def run(trials: int, folder: Path) -> None:
    from archmon.app import Service

    broker = MosquittoBroker(folder / "broker").start()
    hook = Webhook()
    bare = Bare(hook.url)
    stored: queue.Queue[float] = queue.Queue()
    mode = {"bare": False}

    def on_stored(result: Any) -> None:  # the writer's thread, right after the commit
        for reading in result.stored:
            if reading.quantity == "smoke":
                stored.put(time.perf_counter())
                if mode["bare"]:
                    bare.go.set()

    service = Service(load_config(_config(folder, broker.port, hook.url)), on_stored=[on_stored])
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-notify-pub")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    ts = int(time.time() * 1000) - 3_600_000

    def publish(smoke: bool) -> float:
        nonlocal ts
        ts += 1000
        payload = json.dumps({"smoke": smoke, "last_seen": ts})
        publisher.publish("zigbee2mqtt/smoke1", payload, qos=1).wait_for_publish(TIMEOUT_S)
        return stored.get(timeout=TIMEOUT_S)

    latencies: dict[str, list[float]] = {"bare": [], "notify": []}
    try:
        service.start()
        if not all(source.wait_connected(TIMEOUT_S) for source in service.sources().values()):
            raise RuntimeError("the service did not connect to the broker")
        publish(False)  # the detector's first state
        for trial in range(2 * trials + 10):  # the first ten are a warm-up
            if trial % 2 == 0:
                mode["bare"] = True
                at = publish(False)
                took = hook.next("/bare") - at
                mode["bare"] = False
                key = "bare"
            else:
                at = publish(True)
                took = hook.next("/notify", "fired") - at
                publish(False)
                hook.next("/notify", "recovered")
                key = "notify"
            if trial >= 10:
                latencies[key].append(took)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        bare.stop.set()
        service.stop()
        hook.close()
        broker.stop()
    figures = {k: (statistics.median(v) * 1000, _p(v, 0.99) * 1000) for k, v in latencies.items()}
    for key, label in (("bare", "bare path (stored → the same POST, directly)"),
                       ("notify", "notify path (stored → engine → request → outbox → webhook)")):
        p50, p99 = figures[key]
        print(f"{label:62s} {len(latencies[key])} trials: p50 {p50:7.2f} ms, p99 {p99:7.2f} ms")
    ratio = figures["notify"][1] / figures["bare"][1]
    print(f"p99 ratio notify / bare: {ratio:.2f} (DESIGN §10 asks ≤ 2.00: {'met' if ratio <= 2 else 'NOT met'}); "
          f"p50 ratio {figures['notify'][0] / figures['bare'][0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials of each path")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run(args.trials, Path(tmp))


if __name__ == "__main__":
    main()
