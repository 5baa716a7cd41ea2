"""``archmon run`` as an administrator runs it: a separate process on a real Mosquitto, told what to do with
signals (SIGHUP reloads, SIGTERM stops) and telling systemd how it is doing over a real notify socket."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from alerts.audit import verify_audit
from archmon.paho import stop_network_loop
from collector.store import SqliteStore
from tests.archmon.operations import ArchmonProcess, NotifySocket, publisher, query, running, stop_seconds
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

SENSOR = '[[sensors]]\nid = "{id}"\nroom = "paper"\nsource = "b"\ntopic = "zigbee2mqtt/{id}"\nformat = "zigbee2mqtt"\n'


def site(port: int, *, high: float | str, stop_timeout_s: float = 10, sensors: tuple[str, ...] = ("th",),
         extra: str = "") -> str:
    return (f'[site]\nname = "ops"\n[service]\nstop_timeout_s = {stop_timeout_s}\n'
            f'[[rooms]]\nid = "paper"\noverrides = {{ humidity = {{ high = {high}, delay_s = 0 }} }}\n'
            f'[[mqtt]]\nid = "b"\nport = {port}\nclient_id = "archmon-ops-test"\n'
            + "".join(SENSOR.format(id=s) for s in sensors) + extra)


def stored(db: Path, sensor: str, quantity: str) -> list[tuple[int, float]]:
    if not db.exists():
        return []
    store = SqliteStore(db, tz=ZoneInfo("UTC"), readonly=True)
    try:
        return store.series(sensor, quantity, 0, 2**62)
    finally:
        store.close()


def band_alerts(db: Path) -> dict[str, str]:
    rows = query(db, "SELECT sensor, state FROM alert_alerts WHERE rule = 'band'")
    return {str(sensor): str(state) for sensor, state in rows}


def reloads(db: Path) -> list[dict[str, object]]:
    rows = query(db, "SELECT payload FROM audit_log WHERE kind = 'config' AND subject = 'service' ORDER BY seq")
    return [json.loads(str(row[0])) for row in rows]


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def test_sighup_applies_a_changed_band_to_the_next_reading_and_refuses_a_broken_file(
    tmp_path: Path, mosquitto: MosquittoBroker, notify: NotifySocket
) -> None:
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    config.write_text(site(mosquitto.port, high=65), encoding="utf-8")
    pub = publisher(mosquitto.port, "ops-pub")

    def send(sensor: str, humidity: float) -> None:
        before = len(stored(db, sensor, "humidity"))
        payload = json.dumps({"temperature": 20.0, "humidity": humidity})
        pub.publish(f"zigbee2mqtt/{sensor}", payload, qos=1).wait_for_publish(10)
        wait_for(lambda: len(stored(db, sensor, "humidity")) == before + 1, f"{sensor} {humidity} %RH stored")

    try:
        with running(config, tmp_path / "archmon.log", env={"NOTIFY_SOCKET": notify.name}) as archmon:
            assert notify.next().get("READY") == "1"
            archmon.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
            lines = archmon.log().splitlines()
            assert "log times are in Asia/Shanghai (UTC+08:00)" in lines[0]
            assert "+08:00 INFO" in lines[0]

            send("th", 60.0)  # inside 65
            # 1. the band goes down to 55 and a sensor is added: both apply to the next readings
            config.write_text(site(mosquitto.port, high=55, sensors=("th", "th2")), encoding="utf-8")
            archmon.signal(signal.SIGHUP)
            assert notify.next().get("RELOADING") == "1"
            assert notify.next().get("READY") == "1"
            wait_for(lambda: len(reloads(db)) == 1, "the audit entry of the reload")
            assert band_alerts(db) == {}  # the 60 %RH stored before the reload was judged against 65, once
            send("th", 60.5)
            wait_for(lambda: band_alerts(db).get("th") == "active", "a band alert under the new limit")
            send("th2", 50.0)  # its topic was subscribed at the reload, without a reconnect

            # 2. a broken file (the limit would be 70, but the file has an unknown key) is refused
            config.write_text(site(mosquitto.port, high=70, sensors=("th", "th2"), extra="[storag]\n"),
                              encoding="utf-8")
            archmon.signal(signal.SIGHUP)
            wait_for(lambda: len(reloads(db)) == 2, "the audit entry of the refused reload")
            send("th2", 58.0)  # above the running 55, below the refused file's 70
            wait_for(lambda: band_alerts(db).get("th2") == "active", "the running rules still judging")

            archmon.signal(signal.SIGTERM)
            assert archmon.wait(30) == 0
            assert notify.until("STOPPING")["STOPPING"] == "1"
            log = archmon.log()
    finally:
        stop_network_loop(pub)
        pub.disconnect()

    applied, refused = reloads(db)
    assert applied["event"] == "reload" and applied["changed"] == ["rooms", "sensors"]
    assert applied["restart_needed"] == []
    assert refused["event"] == "reload_refused"
    assert any("storag" in problem for problem in refused["problems"])  # type: ignore[union-attr]
    assert "REFUSED, the running configuration stays in force" in log and "storag" in log
    assert "every accepted reading is stored" in log
    assert [v for _, v in stored(db, "th", "humidity")] == [60.0, 60.5]
    with sqlite3.connect(db) as conn:
        assert verify_audit(conn).ok


def test_a_reload_says_what_waits_for_a_restart(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    config.write_text(site(mosquitto.port, high=65), encoding="utf-8")
    with running(config, tmp_path / "archmon.log") as archmon:
        archmon.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
        config.write_text(site(mosquitto.port, high=65).replace('name = "ops"', 'name = "ops"\ntimezone = "UTC"'),
                          encoding="utf-8")
        archmon.signal(signal.SIGHUP)
        wait_for(lambda: len(reloads(db)) == 1, "the audit entry of the reload")
        archmon.signal(signal.SIGTERM)
        assert archmon.wait(30) == 0
        log = archmon.log()
    (entry,) = reloads(db)
    assert entry["restart_needed"] == ["site.timezone"] and entry["changed"] == []
    assert "take effect only at the next restart" in log and "site.timezone" in log
    assert "+08:00 INFO archmon.app: archmon stopped" in log  # still the running zone


class StoreStaller:
    """Stalls the store: a second connection holds SQLite's write lock until :meth:`release`."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
        self.conn.close()


def broker_sent(broker: MosquittoBroker) -> Callable[[], int]:
    """How many PUBLISH packets the broker sent since it started (``$SYS``, updated every second)."""
    seen = [0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, message: seen.__setitem__(0, int(message.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe("$SYS/broker/publish/messages/sent")
    client.loop_start()
    broker_sent.clients.append(client)  # type: ignore[attr-defined]
    return lambda: seen[0]


broker_sent.clients = []  # type: ignore[attr-defined]


def publish_backlog(broker: MosquittoBroker, values: range) -> None:
    pub = publisher(broker.port, "ops-backlog")
    try:
        infos = [pub.publish("zigbee2mqtt/th", json.dumps({"temperature": i / 100}), qos=1) for i in values]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        stop_network_loop(pub)
        pub.disconnect()


def mqtt_stats(log: str) -> dict[str, int]:
    """The MQTT source's counters, from its last log line."""
    text = log.rsplit("mqtt[b]: stopped (", 1)[1].split(")\n", 1)[0]
    return json.loads(text.replace("'", '"'))


def stop_log(log: str) -> tuple[int, str]:
    """How many records were queued when the stop began, and the stop's summary."""
    queued = int(log.split("stopping within ")[1].split(": ")[1].split(" record(s)")[0])
    return queued, log.split("archmon stopped in ")[1]


def test_sigterm_with_a_backlog_on_a_slow_or_stalled_store_stops_within_the_bound_and_loses_nothing(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker]
) -> None:
    """Thousands of QoS 1 messages queued at the broker reach a store that stalls. If it recovers within the
    bound, the stop stores and acknowledges all of them; if not, archmon still exits within the bound,
    having acknowledged only what it stored, and the next start stores every reading exactly once."""
    broker = mosquitto_factory(max_inflight_messages=0, extra_conf=("sys_interval 1",))  # the backlog flows at once
    bound, half = 4, 2000
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    config.write_text(site(broker.port, high=65, stop_timeout_s=bound), encoding="utf-8")
    with running(config, tmp_path / "run1.log") as archmon:  # makes the persistent session
        archmon.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
        archmon.signal(signal.SIGTERM)
        assert archmon.wait(30) == 0

    processes: list[ArchmonProcess] = []

    def backlog_reaches_a_stalled_store(run: str, values: range) -> tuple[ArchmonProcess, StoreStaller]:
        publish_backlog(broker, values)  # queued for archmon's session while it is away
        broker.stop()
        process = ArchmonProcess(config, tmp_path / f"{run}.log")
        processes.append(process)
        process.wait_log("archmon started", "the start")
        staller = StoreStaller(db)
        broker.start()
        sent = broker_sent(broker)
        wait_for(lambda: sent() >= len(values), "the broker sending the backlog")
        return process, staller

    try:
        # 1. the store is stalled at SIGTERM and recovers within the bound: the stop stores everything
        process, staller = backlog_reaches_a_stalled_store("run2", range(half))
        process.signal(signal.SIGTERM)
        process.wait_log("stopping within", "the stop")
        staller.release()  # a slow store, not a dead one
        assert process.wait(bound + 15) == 0
        log = process.log()
        queued, summary = stop_log(log)
        assert queued > 0 and "every accepted reading is stored" in summary
        stats = mqtt_stats(log)
        # what the store had accepted when the stop came (all of it, or less on a loaded machine: messages
        # still held back by the full store, or not yet read, stay with the broker) is stored and
        # acknowledged, nothing else
        first = len(stored(db, "th", "temperature"))
        assert 0 < first <= half
        assert stats["acked"] == first and stats["acked"] + stats["pending"] == stats["received"]

        # 2. the store stays stalled: archmon gives up at the bound, exits 1, acknowledges nothing unstored
        process, staller = backlog_reaches_a_stalled_store("run3", range(half, 2 * half))
        process.signal(signal.SIGTERM)
        code = process.wait(bound + 15)
        staller.release()
        log = process.log()
        queued, summary = stop_log(log)
        assert code == 1, log[-3000:]
        assert stop_seconds(log) <= bound + 1, summary  # its own measure, from the signal on
        assert queued > 0 and "NOT COMPLETE at the bound" in summary
        assert mqtt_stats(log)["acked"] == 0
        assert len(stored(db, "th", "temperature")) == first
    finally:
        for process in processes:
            process.kill()
        for client in broker_sent.clients:  # type: ignore[attr-defined]
            stop_network_loop(client)
            client.disconnect()
        broker_sent.clients.clear()  # type: ignore[attr-defined]

    # 3. the next start gets every unacknowledged message again and stores each reading once
    with running(config, tmp_path / "run4.log") as archmon:
        wait_for(lambda: len(stored(db, "th", "temperature")) >= 2 * half, "every reading stored", timeout=180)
        archmon.signal(signal.SIGTERM)
        assert archmon.wait(30) == 0
        log = archmon.log()
    values = [value for _, value in stored(db, "th", "temperature")]
    assert sorted(values) == [i / 100 for i in range(2 * half)]
    assert mqtt_stats(log)["received"] >= 2 * half - first  # the broker sent every unacknowledged one again


LINE_SOURCE = ('[[sources]]\nkind = "line"\nid = "log{i}"\ndevice = "{device}"\n'
               'line_pattern = "T=(?P<temperature>.+)"\n'
               '[[sensors]]\nid = "t{i}"\nroom = "paper"\nsource = "log{i}"\nkind = "temperature"\n')


@pytest.mark.serial
def test_sigterm_during_a_stall_with_three_line_sources_stops_within_the_bound_and_counts_what_it_loses(
    tmp_path: Path,
) -> None:
    """Three line sensors, each with lines read while the store is stalled. If the stall outlasts the stop,
    archmon still exits within ``stop_timeout_s`` (all sources stop in parallel, the writer gives up in
    time, a locked file in the alert service's stop is one log line) and the lines the store did not take go
    to each source's disk spool, stored at the next start; if the stall ends during the stop, every line is
    stored."""
    from devices.simulators.line_sensor import LineSensorSimulator
    from devices.simulators.pty_pair import PtyPair

    bound = 10
    pairs = [PtyPair(link_dir=tmp_path / f"pty{i}") for i in range(3)]
    sensors = [LineSensorSimulator(pair.b, dict, interval_s=None) for pair in pairs]
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    config.write_text(f'[site]\ntimezone = "UTC"\n[service]\nstop_timeout_s = {bound}\n[[rooms]]\nid = "paper"\n'
                      + "".join(LINE_SOURCE.format(i=i, device=pair.a) for i, pair in enumerate(pairs)),
                      encoding="utf-8")

    def lines_read_in_a_stall(run: str, first: float) -> tuple[ArchmonProcess, StoreStaller]:
        process = ArchmonProcess(config, tmp_path / f"{run}.log")
        process.wait_log("archmon started", "the start")
        for i, sensor in enumerate(sensors):  # one line stored: the port is open and read
            sensor.write_line(f"T={first}")
            wait_for(lambda i=i: first in [v for _, v in stored(db, f"t{i}", "temperature")],
                     f"the first line of log{i}")
        staller = StoreStaller(db)
        for sensor in sensors:
            for k in range(1, 6):
                sensor.write_line(f"T={first + k}")
        # the writer waits a second for the lock before it says so: the lines were read long before
        process.wait_log("database is locked", "the stalled store")
        return process, staller

    for sensor in sensors:
        sensor.open()
    try:
        # 1. the stall outlasts the stop
        process, staller = lines_read_in_a_stall("run1", 20.0)
        process.signal(signal.SIGTERM)
        try:
            code = process.wait(bound + 15)
        finally:
            staller.release()
        log = process.log()
        assert code == 1, log[-3000:]
        _, summary = stop_log(log)
        assert stop_seconds(log) <= bound + 1, summary
        assert "LOST" not in summary, summary
        assert "every accepted reading is stored" not in log
        assert "Traceback" not in log, log[-3000:]
        for i in range(3):
            assert f"log{i}: 5 messages the store did not take at the stop are in the spool" in log
            assert [v for _, v in stored(db, f"t{i}", "temperature")] == [20.0]

        # 2. the stall ends during the stop: the lines handed to the writer at the stop are stored
        process, staller = lines_read_in_a_stall("run2", 30.0)
        process.signal(signal.SIGTERM)
        process.wait_log("stopping within", "the stop")
        staller.release()
        assert process.wait(bound + 15) == 0, process.log()[-3000:]
        _, summary = stop_log(process.log())
        assert "every accepted reading is stored" in summary
        for i in range(3):
            # run 1's spooled lines first (stored at the start), then run 2's
            assert [v for _, v in stored(db, f"t{i}", "temperature")] == [
                20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0]
    finally:
        for sensor in sensors:
            sensor.stop()
        for pair in pairs:
            pair.close()


def test_a_locked_database_in_a_stop_step_is_one_log_line_and_unfinished(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What the alert service's stop meets when another connection holds the file: bounded, said, no crash."""
    from archmon.shutdown import run_step

    db = tmp_path / "a.db"
    sqlite3.connect(db).close()
    staller = StoreStaller(db)
    try:
        def write() -> None:
            conn = sqlite3.connect(db, timeout=0.1)
            try:
                conn.execute("CREATE TABLE t (x)")
            finally:
                conn.close()

        assert run_step(write, 10, "alert service") is False
        assert run_step(lambda: None, 10, "alert feed") is True
    finally:
        staller.release()
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == "stopping: alert service could not finish: OperationalError: database is locked"
    assert record.exc_info is None
