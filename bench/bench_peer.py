"""archmon against what an integrator wires instead: Node-RED 4 (MQTT in → node-red-contrib-influxdb out).

Both consume the same Zigbee2MQTT messages from one local Mosquitto (QoS 1, persistent session) and write
them into one local VictoriaMetrics (Debian's ``victoria-metrics``):

- **Node-RED** 4.x with ``node-red-contrib-influxdb`` (an ``mqtt in`` node, a function node turning the
  payload into a point with the device time, an ``influxdb out`` node, InfluxDB 1.x API), installed by this
  bench's own setup with ``npm install`` into ``bench/.peer`` (or ``$ARCHMON_BENCH_PEER_DIR``), never by
  archmon's install. 5.x needs Node.js ≥ 22.9; the machines have 20.
- **archmon**: ``archmon run`` (a child process) storing into SQLite, the outbox forwarding to
  VictoriaMetrics (``[forward.influxdb]``, v2 write API).

Two figures each, in the same run:

1. throughput: messages published at full speed, messages per second until every reading is in
   VictoriaMetrics (``/api/v1/export``, each (series, time) counted once);
2. readings lost at a SIGKILL: messages published at a fixed rate, the consumer killed with SIGKILL
   half-way and started again at once; readings missing from VictoriaMetrics once the stream is over and
   the consumer has caught up.

Run: ``.venv/bin/python bench/bench_peer.py [--messages 20000] [--kill-messages 10000] [--rate 1000]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._suite import BenchResult, Scale, ratio_row
from tests.fixtures.mosquitto import MosquittoBroker, free_port
from tests.fixtures.tsdb import VictoriaServer

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = Path(os.environ.get("ARCHMON_BENCH_PEER_DIR", ROOT / "bench" / ".peer"))
NODE_RED = "node-red@4"
INFLUX_NODE = "node-red-contrib-influxdb@0.7"
SENSORS = 100
TOPIC_FILTER = "zigbee2mqtt/+"
METRICS = {"archmon": "temperature_value|humidity_value", "node-red": "nr_temperature|nr_humidity"}
FUNCTION = ("const p = msg.payload;\nmsg.measurement = 'nr';\n"
            "msg.payload = [{temperature: p.temperature, humidity: p.humidity, time: new Date(p.last_seen)},"
            " {sensor: msg.topic.split('/')[1]}];\nreturn msg;")


def node_red_version() -> str:
    """The installed Node-RED's version, or "not installed"."""
    package = PEER_DIR / "node_modules" / "node-red" / "package.json"
    return json.loads(package.read_text())["version"] if package.exists() else "not installed"


def ensure_node_red() -> Path:
    """Node-RED 4 and node-red-contrib-influxdb under :data:`PEER_DIR` (npm install once); its red.js.

    Raises:
        RuntimeError: npm failed (its output is quoted).
    """
    red = PEER_DIR / "node_modules" / "node-red" / "red.js"
    if red.exists() and (PEER_DIR / "node_modules" / "node-red-contrib-influxdb").exists():
        return red
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "install", "--prefix", str(PEER_DIR), "--no-audit", "--no-fund", "--no-save",
                           NODE_RED, INFLUX_NODE], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not red.exists():
        raise RuntimeError(f"npm install {NODE_RED} {INFLUX_NODE} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return red


def payload(n: int, base_ms: int) -> tuple[str, bytes]:
    """Message ``n``: one of :data:`SENSORS` sensors, a device time unique to the message, a storage room's
    quiet climate (steps of 0.1 inside every band, stability and rate limit: no alert fires, as in a room
    that is fine; values jumping by degrees made archmon judge 200 alerts a second, which Node-RED does not)."""
    step = (n // SENSORS) % 5
    body = {"temperature": round(20 + step / 10, 1), "humidity": round(50 + step / 10, 1), "last_seen": base_ms + n}
    return f"zigbee2mqtt/bench-{n % SENSORS:03d}", json.dumps(body).encode()


def create_session(port: int, client_id: str) -> None:
    """Make ``client_id``'s persistent session subscribed to the topics, so nothing published is missed."""
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(TOPIC_FILTER, qos=1)
    if not subscribed.wait(30):
        raise RuntimeError(f"{client_id}: SUBSCRIBE not answered")
    client.disconnect()
    client.loop_stop()


class Publisher:
    """Publishes messages ``0 .. count-1`` at QoS 1, at full speed or ``rate`` per second, in a thread."""

    def __init__(self, port: int, count: int, base_ms: int, rate: float | None = None) -> None:
        self.count, self.base_ms, self.rate = count, base_ms, rate
        self.published = 0
        self.started = 0.0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Publisher:
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def _run(self) -> None:
        last = None
        for n in range(self.count):
            if self.rate:
                wait = self.started + n / self.rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            topic, body = payload(n, self.base_ms)
            last = self.client.publish(topic, body, qos=1)
            self.published = n + 1
        if last is not None:
            last.wait_for_publish(120)

    def join(self) -> None:
        self.thread.join()
        self.client.loop_stop()
        self.client.disconnect()


def landed(victoria: VictoriaServer, system: str, base_ms: int, count: int) -> int:
    """Readings of ``system`` in VictoriaMetrics with a device time of messages ``base_ms + [0, count)``."""
    urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=30).read()
    data = urllib.parse.urlencode({"match[]": f'{{__name__=~"{METRICS[system]}"}}', "start": str(base_ms // 1000 - 1),
                                   "end": str((base_ms + count) // 1000 + 1)}).encode()
    with urllib.request.urlopen(f"{victoria.url}/api/v1/export", data=data, timeout=60) as answer:
        body = answer.read()
    seen: set[tuple[str, int]] = set()
    for line in body.decode().splitlines():
        if line.strip():
            item = json.loads(line)
            key = json.dumps(item["metric"], sort_keys=True)
            seen.update((key, ts) for ts in item["timestamps"] if base_ms <= ts < base_ms + count)
    return len(seen)


class Consumer:
    """archmon run or Node-RED as a child process, started, killed with SIGKILL and started again."""

    def __init__(self, system: str, folder: Path, broker: MosquittoBroker, victoria: VictoriaServer) -> None:
        self.system, self.folder, self.broker = system, folder, broker
        folder.mkdir(parents=True, exist_ok=True)
        self.client_id = f"bench-peer-{system}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        if system == "archmon":
            sensors = "".join(f'[[sensors]]\nid = "bench-{i:03d}"\nroom = "r"\nsource = "b"\n'
                              f'topic = "zigbee2mqtt/bench-{i:03d}"\nformat = "zigbee2mqtt"\n' for i in range(SENSORS))
            (folder / "archmon.toml").write_text(
                f'[site]\nname = "bench"\n[alerts.calibration]\nuncalibrated = false\n'
                f'[storage]\nsqlite_path = "{folder / "archmon.db"}"\n[[rooms]]\nid = "r"\n'
                f'[[mqtt]]\nid = "b"\nport = {broker.port}\nclient_id = "{self.client_id}"\n{sensors}'
                f'[forward.influxdb]\nurl = "{victoria.url}"\n', encoding="utf-8")
            self.command = [sys.executable, "-m", "archmon", "--config", str(folder / "archmon.toml"), "run",
                            "--http", "off"]
        else:
            red = ensure_node_red()
            (folder / "node_modules").unlink(missing_ok=True)
            (folder / "node_modules").symlink_to(PEER_DIR / "node_modules")
            port = free_port()
            (folder / "settings.js").write_text(
                f"module.exports = {{ flowFile: 'flows.json', uiPort: {port}, uiHost: '127.0.0.1', "
                "credentialSecret: false, editorTheme: { tours: false }, "
                "logging: { console: { level: 'info', metrics: false, audit: false } } };\n", encoding="utf-8")
            (folder / "flows.json").write_text(json.dumps(self._flow(broker.port, victoria.port)), encoding="utf-8")
            self.command = ["node", str(red), "--userDir", str(folder), "--settings", str(folder / "settings.js")]

    def _flow(self, broker_port: int, vm_port: int) -> list[dict[str, object]]:
        # ids are not used as any property's value: Node-RED takes such a value for a reference to that node
        return [
            {"id": "n-tab", "type": "tab", "label": "bench"},
            {"id": "n-broker", "type": "mqtt-broker", "name": "local broker", "broker": "127.0.0.1",
             "port": str(broker_port), "clientid": self.client_id, "autoConnect": True, "usetls": False,
             "protocolVersion": "4", "keepalive": "60", "cleansession": False, "autoUnsubscribe": False},
            {"id": "n-in", "type": "mqtt in", "z": "n-tab", "topic": TOPIC_FILTER, "qos": "1", "datatype": "json",
             "broker": "n-broker", "nl": False, "rap": True, "rh": 0, "inputs": 0, "wires": [["n-fn"]]},
            {"id": "n-fn", "type": "function", "z": "n-tab", "name": "to point", "func": FUNCTION, "outputs": 1,
             "wires": [["n-out"]]},
            {"id": "n-influx", "type": "influxdb", "hostname": "127.0.0.1", "port": str(vm_port), "protocol": "http",
             "database": "nodered", "name": "victoria", "usetls": False, "influxdbVersion": "1.x"},
            {"id": "n-out", "type": "influxdb out", "z": "n-tab", "influxdb": "n-influx", "name": "",
             "measurement": "nr", "precision": "ms", "retentionPolicy": "", "wires": []},
        ]

    def _connections(self) -> int:
        text = self.broker.log_path.read_text(encoding="utf-8", errors="replace")
        return text.count(f" as {self.client_id} ")

    def start(self, timeout: float = 90.0) -> float:
        """Start the process; seconds until it connected to the broker."""
        before = self._connections()
        began = time.perf_counter()
        log = open(self.folder / f"{self.system}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(self.command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONPATH=str(ROOT)))
        log.close()
        self.starts += 1
        while self._connections() <= before:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.system} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.perf_counter() - began > timeout:
                raise RuntimeError(f"{self.system} did not connect in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)
        return time.perf_counter() - began

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        path = self.folder / f"{self.system}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class PeerFigures(NamedTuple):
    """One system's figures."""

    throughput: float  # messages/s, publish → every reading in VictoriaMetrics
    throughput_complete: bool  # False: not every reading arrived within the bound
    throughput_landed: int  # readings that arrived in the throughput run (of 2 × messages)
    lost_paced: int  # readings missing after the SIGKILL and restart, messages published at the fixed rate
    lost_burst: int  # the same, messages published as fast as the publisher can (a backlog)
    kill_readings: int  # readings published in each kill run
    start_s: float  # seconds from start to connected


def _wait_landed(victoria: VictoriaServer, system: str, base_ms: int, count: int, deadline_s: float,
                 settle_s: float = 5.0) -> tuple[int, float]:
    """Poll until every reading landed, or none arrived for ``settle_s``, or ``deadline_s``; (count, when)."""
    began = time.perf_counter()
    last, last_change = -1, began
    while True:
        got = landed(victoria, system, base_ms, count)
        now = time.perf_counter()
        if got != last:
            last, last_change = got, now
        if got >= 2 * count or now - last_change > settle_s or now - began > deadline_s:
            return got, (now if got >= 2 * count else last_change)  # incomplete: when the last one came
        time.sleep(0.2)


def measure(system: str, folder: Path, broker: MosquittoBroker, victoria: VictoriaServer, messages: int,
            kill_messages: int, rate: float) -> PeerFigures:
    """Throughput and readings lost at a SIGKILL of ``system`` ("archmon" or "node-red")."""
    consumer = Consumer(system, folder, broker, victoria)
    create_session(broker.port, consumer.client_id)
    try:
        start_s = consumer.start()
        base = int(time.time() * 1000) - 3_600_000 - (0 if system == "archmon" else 600_000)
        publisher = Publisher(broker.port, messages, base).start()
        # a pause of the forwarder (a retry after a slow answer on a loaded machine) is no end of the stream
        got, done_at = _wait_landed(victoria, system, base, messages, deadline_s=max(180.0, messages / 100),
                                    settle_s=30.0)
        publisher.join()
        throughput = got / 2 / (done_at - publisher.started)
        lost = []
        for run, pace in enumerate((rate, None)):
            base2 = base + (run + 1) * 10 * (messages + kill_messages)
            publisher = Publisher(broker.port, kill_messages, base2, pace).start()
            while publisher.published < kill_messages // 2:
                time.sleep(0.002)
            consumer.kill()
            consumer.start()
            publisher.join()
            got2, _ = _wait_landed(victoria, system, base2, kill_messages,
                                   deadline_s=max(120.0, kill_messages / 100), settle_s=10.0)
            lost.append(2 * kill_messages - got2)
        return PeerFigures(throughput, got >= 2 * messages, got, lost[0], lost[1], 2 * kill_messages, start_s)
    finally:
        consumer.stop()


SIZES: dict[str, dict[str, float]] = {
    "toy": {"messages": 200, "kill_messages": 200, "rate": 400},
    "quick": {"messages": 5000, "kill_messages": 4000, "rate": 800},
    "full": {"messages": 20_000, "kill_messages": 10_000, "rate": 1000},
}


def suite(scale: Scale, folder: Path) -> BenchResult:
    """Both systems, one after the other, on one broker and one VictoriaMetrics (toy: archmon only)."""
    size = SIZES[scale]
    messages, kill_messages, rate = int(size["messages"]), int(size["kill_messages"]), size["rate"]
    systems = ("archmon",) if scale == "toy" else ("archmon", "node-red")
    broker = MosquittoBroker(folder / "broker", max_inflight_messages=1000, max_queued_messages=1_000_000).start()
    victoria = VictoriaServer(folder / "victoria")
    figures: dict[str, PeerFigures] = {}
    try:
        victoria.start()
        for system in systems:
            figures[system] = measure(system, folder / system, broker, victoria, messages, kill_messages, rate)
    finally:
        victoria.close()
        broker.close()
    mine, peer = figures["archmon"], figures.get("node-red")
    notes = [f"{name}: connected {f.start_s:.1f} s after start; throughput run "
             f"{'complete' if f.throughput_complete else f'INCOMPLETE ({f.throughput_landed} of {2 * messages})'}; "
             f"readings lost at the SIGKILL: {f.lost_paced} of {f.kill_readings} at {rate:,.0f} msg/s, "
             f"{f.lost_burst} of {f.kill_readings} published at full speed"
             for name, f in figures.items()]
    if peer is None:
        notes.append("toy scale: Node-RED not run")
    rows = [
        ratio_row("messages/s, MQTT → VictoriaMetrics (2 readings each)", mine.throughput,
                  peer.throughput if peer else None, "msg/s", "Node-RED 4 + node-red-contrib-influxdb"),
        ratio_row(f"readings lost, SIGKILL mid-stream, {kill_messages:,} msgs at {rate:,.0f}/s", float(mine.lost_paced),
                  float(peer.lost_paced) if peer else None, "readings", "Node-RED 4 + node-red-contrib-influxdb",
                  goal="0 lost", value_at_most=0),
        ratio_row(f"readings lost, SIGKILL mid-stream, {kill_messages:,} msgs at full speed", float(mine.lost_burst),
                  float(peer.lost_burst) if peer else None, "readings", "Node-RED 4 + node-red-contrib-influxdb",
                  goal="0 lost", value_at_most=0),
    ]
    return BenchResult("peer", rows, sizes={"messages": messages, "kill_messages": kill_messages,
                                            "kill_rate_per_s": rate, "sensors": SENSORS,
                                            "node_red": node_red_version()}, notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--kill-messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s in the SIGKILL run")
    parser.add_argument("--only", choices=("archmon", "node-red"), help="measure one system only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archmon-bench-peer-") as tmp:
        folder = Path(tmp)
        broker = MosquittoBroker(folder / "broker", max_inflight_messages=1000, max_queued_messages=1_000_000).start()
        victoria = VictoriaServer(folder / "victoria")
        try:
            victoria.start()
            for system in (args.only,) if args.only else ("archmon", "node-red"):
                f = measure(system, folder / system, broker, victoria, args.messages, args.kill_messages, args.rate)
                print(f"{system:9s}: {f.throughput:8,.0f} msg/s MQTT → VictoriaMetrics"
                      f"{'' if f.throughput_complete else ' (INCOMPLETE)'}; SIGKILL mid-stream, readings lost: "
                      f"{f.lost_paced} of {f.kill_readings} at {args.rate:,.0f} msg/s, {f.lost_burst} of "
                      f"{f.kill_readings} at full speed; connected {f.start_s:.1f} s after start")
        finally:
            victoria.close()
            broker.close()


if __name__ == "__main__":
    main()
