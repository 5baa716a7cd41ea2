"""Fault injection while ``archmon run`` forwards a real MQTT stream to a real server: each test ends with every
reading stored exactly once locally (SQLite) and exactly once remotely (InfluxDB 1.6 or VictoriaMetrics),
with its tags, value and millisecond timestamp.

(a) InfluxDB stopped during the stream, then restarted: the outbox fills (the ``forwarding`` alert rises), then
    drains (it clears);
(b) the broker restarted twice during the stream (down for a second each time): archmon and the publisher
    reconnect, the persistent session keeps what was queued, copies sent again are stored once;
(c) ``archmon run`` SIGKILLed during the stream while forwarding, with writes the server applied but whose
    answers were lost (a proxy drops them), then restarted: those rows are sent again, which the server
    absorbs (same series and timestamp: one point);
(e) the SQLite file locked by another process for 20 s while MQTT and serial readings arrive: ingest waits (MQTT
    messages stay unacknowledged at the broker, serial lines are held in memory and the disk spool), forwarding
    waits, both resume;
(f) the WAN cut: a TCP proxy between the site and the server blackholes the link, then refuses it, then is
    restored: requests time out, the outbox holds, it drains afterwards.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.archmon.forwarding import (
    Stream,
    forwarded,
    forwarding_alerts,
    local,
    outbox_rows,
    start,
    wait_drained,
    write_site,
)
from tests.archmon.operations import query
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.store_stall import StoreStall
from tests.fixtures.tcp_proxy import TcpProxy
from tests.fixtures.tsdb import InfluxServer, VictoriaServer
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.tsdb, pytest.mark.slow]

BASE_MS = (int(time.time()) - 86_400) * 1000


def test_a_influxdb_stopped_during_a_stream_fills_the_outbox_and_it_drains_after_the_restart(
        tmp_path: Path, mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    config = write_site(tmp_path, mosquitto.port, f'url = "{influx.url}"\napi = "v1"\nwarn_rows = 300\n')
    db = tmp_path / "archmon.db"
    stream = Stream(mosquitto.port, BASE_MS)
    process = start(config, tmp_path / "run.log")
    try:
        stream.publish(range(0, 400))
        wait_for(lambda: forwarded(db) >= 400, "the first readings forwarded")
        influx.stop()
        stream.publish(range(400, 1400), pace_s=0.001)
        wait_for(lambda: len(local(db)) >= 1400, "every reading stored while InfluxDB is down")
        assert outbox_rows(db) >= 900  # (one request may have been under way when it stopped)
        wait_for(lambda: ("active", "influxdb") in forwarding_alerts(db), "the forwarding backlog alert", 30)
        influx.start()
        wait_drained(db, 1400)
        wait_for(lambda: ("active", "influxdb") not in forwarding_alerts(db), "the alert to clear", 30)
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        stream.close()
    assert local(db) == stream.expected_local(1400)
    assert sorted(influx.points()) == stream.expected(1400)
    counters = dict(query(db, "SELECT name, value FROM counters WHERE name LIKE 'forward.%'"))
    gauges = dict(query(db, "SELECT name, value FROM gauges WHERE name LIKE 'forward.%'"))
    assert counters["forward.influxdb.forwarded"] >= 1400 and counters["forward.influxdb.failures"] >= 1
    assert (gauges["forward.influxdb.outbox_rows"], gauges["forward.influxdb.up"]) == (0, 1)


def test_b_the_broker_restarted_twice_during_a_stream_loses_and_duplicates_nothing_locally_or_remotely(
        tmp_path: Path, mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    config = write_site(tmp_path, mosquitto.port, f'url = "{influx.url}"\napi = "v1"\n')
    db = tmp_path / "archmon.db"
    stream = Stream(mosquitto.port, BASE_MS)
    process = start(config, tmp_path / "run.log")
    total = 2000
    try:
        restarted = threading.Event()
        publishing = threading.Thread(target=stream.publish, args=(range(total),),
                                      kwargs={"pace_s": 0.002, "hold_at": 1500, "until": restarted})
        publishing.start()
        for at_least in (400, 1000):
            wait_for(lambda a=at_least: len(local(db)) >= a, f"{at_least} readings stored")
            assert publishing.is_alive()  # the restart falls inside the stream (it holds at 1500 until released)
            mosquitto.stop()
            time.sleep(1)  # the broker stays down for a moment: the publisher queues, archmon retries
            mosquitto.start()
        restarted.set()
        publishing.join(180)
        assert not publishing.is_alive()
        wait_drained(db, total)
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        stream.close()
    assert process.log().count("mqtt[b]: subscribed") == 3  # the first connection and one per restart
    assert local(db) == stream.expected_local(total)
    assert sorted(influx.points()) == stream.expected(total)


def test_c_archmon_killed_while_forwarding_and_restarted_sends_everything_once(
        tmp_path: Path, mosquitto: MosquittoBroker, victoria: VictoriaServer,
        tcp_proxy: Callable[[int], TcpProxy]) -> None:
    proxy = tcp_proxy(victoria.port)
    config = write_site(tmp_path, mosquitto.port, f'url = "http://127.0.0.1:{proxy.port}"\nbucket = "archmon"\n'
                                                  "batch_size = 50\n")
    db = tmp_path / "archmon.db"
    stream = Stream(mosquitto.port, BASE_MS)
    process = start(config, tmp_path / "run-1.log")
    try:
        stream.publish(range(0, 500), pace_s=0.001)
        wait_for(lambda: forwarded(db) >= 200, "forwarding under way")
        proxy.set_mode("mute")  # writes reach the server, their answers are lost: sent, never acknowledged
        stream.publish(range(500, 1000), pace_s=0.001)
        wait_for(lambda: len(victoria.points()) > forwarded(db), "points the server has and the site did not see "
                                                                 "accepted")
        process.signal(signal.SIGKILL)  # a crash in the middle of it
        process.wait(10)
        assert outbox_rows(db) > 0 and len(victoria.points()) > forwarded(db)
        proxy.set_mode("pass")
        stream.publish(range(1000, 1500))  # the broker keeps them for the collector's session
        process = start(config, tmp_path / "run-2.log")
        wait_drained(db, 1500)
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        stream.close()
    assert local(db) == stream.expected_local(1500)
    assert sorted(victoria.points()) == stream.expected(1500)  # the points sent twice are there once


LINE_SOURCE = ('[[sources]]\nkind = "line"\nid = "log"\ndevice = "{device}"\nline_pattern = "T=(?P<temperature>.+)"\n'
               '[[sensors]]\nid = "line1"\nroom = "paper"\nsource = "log"\nkind = "temperature"\n')


@pytest.mark.serial
def test_e_a_store_locked_for_20_s_while_mqtt_and_serial_readings_arrive_loses_nothing_and_forwarding_resumes(
        tmp_path: Path, mosquitto: MosquittoBroker, influx: InfluxServer) -> None:
    from devices.simulators.line_sensor import LineSensorSimulator
    from devices.simulators.pty_pair import PtyPair

    pair = PtyPair(link_dir=tmp_path / "pty")
    line = LineSensorSimulator(pair.b, dict, interval_s=None)
    config = write_site(tmp_path, mosquitto.port, f'url = "{influx.url}"\napi = "v1"\n')
    with config.open("a", encoding="utf-8") as out:
        out.write(LINE_SOURCE.format(device=pair.a))
    db = tmp_path / "archmon.db"
    stream = Stream(mosquitto.port, BASE_MS)
    line.open()
    process = start(config, tmp_path / "run.log")
    written = [round(10 + k / 20, 2) for k in range(200)]  # 10.0–19.95 °C, stamped by archmon as they arrive
    try:
        stream.publish(range(0, 300))
        for value in written[:20]:
            line.write_line(f"T={value}")
        wait_drained(db, 320)
        with StoreStall(db):
            started = time.monotonic()
            for value in written[20:]:  # read while the file is locked: held in memory (past its bound, the disk spool)
                line.write_line(f"T={value}")
            stream.publish(range(300, 900), pace_s=0.01)  # arrives while the file is locked
            assert len(local(db)) == 320  # (readers still read: WAL) nothing committed meanwhile
            time.sleep(max(0.0, 20 - (time.monotonic() - started)))  # the stall itself lasts 20 s
        wait_drained(db, 1100)
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert "store writer: write succeeded again" in process.log()
    finally:
        process.kill()
        stream.close()
        line.stop()
        pair.close()
    stored = local(db)
    assert [r for r in stored if r[0] != "line1"] == stream.expected_local(900)
    serial = sorted((ts, value) for sensor, ts, value in stored if sensor == "line1")
    assert [value for _, value in serial] == written  # every line once, in the order written
    remote = sorted(influx.points())
    assert [p for p in remote if ("sensor", "line1") not in p.tags] == stream.expected(900)
    assert sorted((p.ts_ms, p.value) for p in remote if ("sensor", "line1") in p.tags) == serial


def test_f_a_cut_wan_link_holds_the_outbox_until_it_is_restored(
        tmp_path: Path, mosquitto: MosquittoBroker, victoria: VictoriaServer,
        tcp_proxy: Callable[[int], TcpProxy]) -> None:
    proxy = tcp_proxy(victoria.port)
    config = write_site(tmp_path, mosquitto.port, f'url = "http://127.0.0.1:{proxy.port}"\nbucket = "archmon"\n'
                                                  "batch_size = 100\n")
    db = tmp_path / "archmon.db"
    stream = Stream(mosquitto.port, BASE_MS)
    process = start(config, tmp_path / "run.log")
    try:
        stream.publish(range(0, 300))
        wait_drained(db, 300)
        proxy.set_mode("blackhole")  # packets vanish: requests time out (timeout_s = 2)
        cut = time.monotonic()
        stream.publish(range(300, 800), pace_s=0.002)
        process.wait_log("Read timed out", "a request timing out on the cut link", 30)
        time.sleep(max(0.0, 6 - (time.monotonic() - cut)))  # the cut lasts: several requests time out
        proxy.set_mode("refuse")  # then the link is down outright
        stream.publish(range(800, 1000))
        wait_for(lambda: len(local(db)) >= 1000, "readings stored while the link is down")
        time.sleep(max(0.0, 9 - (time.monotonic() - cut)))
        assert outbox_rows(db) >= 700
        proxy.set_mode("pass")
        wait_drained(db, 1000)
        process.signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        stream.close()
    assert local(db) == stream.expected_local(1000)
    assert sorted(victoria.points()) == stream.expected(1000)
