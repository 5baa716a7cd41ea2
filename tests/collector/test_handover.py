"""Serial sources keep what they read until it is durable (``collector/handover.py``), shown on the
real ingest path: StoreWriter, Pipeline and SQLite file, lines over a real pty from the line-sensor
simulator, polls of the pymodbus RTU simulator on a real pty. A stall is another connection holding an
EXCLUSIVE lock on the store file."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest

from archmon.config import Config, parse_config
from archmon.domain import RawMessage
from archmon.errors import ConfigError
from archmon.timeutil import now_ms
from collector.handover import Handover
from collector.modbus import ModbusSource, bus_devices
from collector.modbus_config import ModbusSourceConfig
from collector.records import WriteResult
from collector.serial_line import SerialLineSource
from collector.serial_line_config import LineSourceConfig
from collector.sources import configs_of, source_configs
from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.modbus_slave import ModbusSlaveSimulator, SimDevice, encode_int16_x10, encode_uint16_x10
from devices.simulators.pty_pair import PtyPair
from tests.fixtures.serial_ports import wait_until
from tests.fixtures.store_stall import CorruptTable, IngestPath, StoreStall, ingest_path, refuse_value

pytestmark = pytest.mark.serial

# -- serial line -------------------------------------------------------------------------------------

STALL_S = 10.0
TS0 = (now_ms() // 1000 - 3600) * 1000  # lines carry their device time (an hour ago): one known reading each
TS_PATTERN = r"(?P<ts>\d+) T=(?P<temperature>-?\d+(?:\.\d+)?)"


def _line_site(device: str, **options: object) -> Config:
    return parse_config({
        "site": {"timezone": "UTC"},
        "rooms": [{"id": "r"}],
        "sources": [{"kind": "line", "id": "logger1", "device": device, "line_pattern": TS_PATTERN,
                     "reconnect_max_s": 0.2, **options}],
        "sensors": [{"id": "t1", "room": "r", "source": "logger1", "kind": "temperature"}],
    })


def _line(i: int) -> str:
    return f"{TS0 + i * 1000} T={i % 500 / 10:.1f}"


def _stored_lines(ingest: IngestPath) -> list[int]:
    return sorted((ts - TS0) // 1000 for ts, _ in ingest.stored("t1", "temperature"))


@pytest.fixture
def line_sensor(pty_pair: PtyPair) -> Iterator[LineSensorSimulator]:
    sim = LineSensorSimulator(pty_pair.b, dict, interval_s=None)
    sim.open()
    try:
        yield sim
    finally:
        sim.stop()


def test_lines_read_while_the_store_is_stalled_are_all_stored(
    tmp_path: Path, pty_pair: PtyPair, line_sensor: LineSensorSimulator
) -> None:
    """A real 10 s stall; the writer's queue is small, so a reader handing lines to ``submit`` itself
    would block in it and stop reading the port."""
    config = _line_site(pty_pair.a)
    (line_config,) = configs_of(config, LineSourceConfig)
    with ingest_path(config, tmp_path / "archmon.db", max_queued_records=16) as ingest:
        source = SerialLineSource(line_config, ingest.pipeline.process_many)
        source.start()
        try:
            assert wait_until(lambda: source.connected)
            count = 200
            with StoreStall(ingest.path):
                began = time.monotonic()
                paced = threading.Event()
                for i in range(count):  # spread over the stall: the reader must keep reading all along
                    line_sensor.write_line(_line(i))
                    paced.wait(STALL_S * 0.8 / count)
                assert wait_until(lambda: source.stats()["lines"] == count)  # read while nothing could be stored
                assert ingest.stored("t1", "temperature") == []
                assert source.stats()["buffered"] == count
                time.sleep(max(0.0, STALL_S - (time.monotonic() - began)))  # the stall itself, not a sync
                assert ingest.writer.stats().committed_readings == 0
            assert source.handover.wait_drained(60)
            assert _stored_lines(ingest) == list(range(count))
            stats = source.stats()
            assert (stats["delivered"], stats["dropped"], stats["refused"], stats["buffered"]) == (count, 0, 0, 0)
        finally:
            source.stop()


def test_past_the_bound_exactly_the_counted_oldest_lines_are_dropped(
    tmp_path: Path, pty_pair: PtyPair, line_sensor: LineSensorSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    bound, count = 40, 200
    config = _line_site(pty_pair.a, max_buffered_messages=bound)
    (line_config,) = configs_of(config, LineSourceConfig)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        source = SerialLineSource(line_config, ingest.pipeline.process_many)
        source.start()
        try:
            assert wait_until(lambda: source.connected)
            with StoreStall(ingest.path):
                line_sensor.write_line(_line(0))
                # the first line goes to the (stalled) store; everything after it waits in the buffer
                assert wait_until(lambda: source.handover.stats().in_flight == 1)
                for i in range(1, count):
                    line_sensor.write_line(_line(i))
                assert wait_until(lambda: source.stats()["lines"] == count)
                stats = source.stats()
                assert (stats["buffered"], stats["dropped"]) == (bound, count - bound)
            assert source.handover.wait_drained(60)
            stored = _stored_lines(ingest)
            # the line in flight, then the newest bound - 1; the oldest of those waiting were dropped
            assert stored == [0, *range(count - bound + 1, count)]
            assert source.stats()["dropped"] == count - len(stored) == count - bound
            assert any("dropping the oldest" in r.getMessage() and "logger1" in r.getMessage() for r in caplog.records)
        finally:
            source.stop()


def test_a_line_the_store_refuses_for_good_is_counted_and_the_rest_stored(
    tmp_path: Path, pty_pair: PtyPair, line_sensor: LineSensorSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = _line_site(pty_pair.a)
    (line_config,) = configs_of(config, LineSourceConfig)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        refuse_value(ingest.path, 0.7)  # the store itself refuses one reading: a constraint, not a stall
        source = SerialLineSource(line_config, ingest.pipeline.process_many)
        source.start()
        try:
            assert wait_until(lambda: source.connected)
            with StoreStall(ingest.path):  # so that the bad line arrives in one chunk with good ones
                for i in range(20):
                    line_sensor.write_line(_line(i))
                assert wait_until(lambda: source.stats()["lines"] == 20)
            assert source.handover.wait_drained(60)
            assert _stored_lines(ingest) == [i for i in range(20) if i != 7]
            stats = source.stats()
            assert (stats["refused"], stats["delivered"], stats["buffered"]) == (1, 19, 0)
            (refused,) = source.handover.refused()
            assert refused.message.payload == _line(7).encode() and "IntegrityError" in refused.reason
            assert any("refused a message for good" in r.getMessage() and _line(7) in r.getMessage()
                       for r in caplog.records)
        finally:
            source.stop()


def test_a_stop_during_a_stall_hands_every_line_to_the_writer_and_its_final_flush_stores_them(
    tmp_path: Path, pty_pair: PtyPair, line_sensor: LineSensorSimulator
) -> None:
    config = _line_site(pty_pair.a)
    (line_config,) = configs_of(config, LineSourceConfig)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        source = SerialLineSource(line_config, ingest.pipeline.process_many)
        source.start()
        try:
            assert wait_until(lambda: source.connected)
            with StoreStall(ingest.path):
                line_sensor.write_line(_line(0))
                assert wait_until(lambda: source.handover.stats().in_flight == 1)
                for i in range(1, 10):
                    line_sensor.write_line(_line(i))
                assert wait_until(lambda: source.stats()["lines"] == 10)
                assert ingest.writer.stats().queued_records == 1  # only the line in flight so far
                source.stop(timeout=0.2)  # gives up waiting for the stalled store ...
                # ... but not before handing the 9 waiting lines to the writer, for its final flush
                assert wait_until(lambda: ingest.writer.stats().queued_records == 10)
            assert ingest.writer.flush(30)
            assert _stored_lines(ingest) == list(range(10))
            assert source.handover.wait_drained(10)
            stats = source.stats()
            assert (stats["delivered"], stats["lost_at_stop"], stats["refused"], stats["buffered"]) == (10, 0, 0, 0)
        finally:
            source.stop()


def test_lines_the_writer_gives_up_at_close_are_counted_lost_at_stop_never_refused(
    tmp_path: Path, pty_pair: PtyPair, line_sensor: LineSensorSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = _line_site(pty_pair.a)
    (line_config,) = configs_of(config, LineSourceConfig)
    with ingest_path(config, tmp_path / "archmon.db", busy_timeout_s=0.5) as ingest:
        source = SerialLineSource(line_config, ingest.pipeline.process_many)
        source.start()
        try:
            assert wait_until(lambda: source.connected)
            with StoreStall(ingest.path):
                for i in range(10):
                    line_sensor.write_line(_line(i))
                assert wait_until(lambda: source.stats()["lines"] == 10)
                source.stop(timeout=0.2)
                assert not ingest.writer.close(timeout=0.5)  # the store stays stalled: the writer gives up
                assert source.handover.wait_drained(10)
            assert _stored_lines(ingest) == []
            stats = source.stats()
            assert (stats["lost_at_stop"], stats["refused"], stats["delivered"], stats["buffered"]) == (10, 0, 0, 0)
            assert any("10 messages read before the stop were not stored" in r.getMessage() for r in caplog.records)
            assert not any("refused" in r.getMessage() for r in caplog.records if r.name == "collector.handover")
        finally:
            source.stop()


# -- the hand-over alone, on the real ingest path ----------------------------------------------------

PLAIN_PATTERN = r"T=(?P<temperature>-?\d+(?:\.\d+)?)"  # no device time: readings get the receive time


def _message(value: float, received_ms: int) -> RawMessage:
    return RawMessage("logger1", "line/logger1", f"T={value}".encode(), received_ms)


def _stamps(ingest: IngestPath) -> dict[float, int]:
    return {value: ts for ts, value in ingest.stored("t1", "temperature")}


def test_a_refusal_moves_no_reading_stamped_with_its_receive_time(tmp_path: Path) -> None:
    """The refused chunk is handed over again message by message: each must get the stamp it got the first
    time (the pipeline remembers it per message), not "the sensor's last stamp + 1 ms"."""
    config = _line_site("/dev/null", line_pattern=PLAIN_PATTERN)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        refuse_value(ingest.path, 7.0)
        handover = Handover("logger1", ingest.pipeline.process_many, max_buffered=100)
        sent = {float(i): now_ms() - 60_000 + i * 1000 for i in range(10)}  # one line a second, a minute ago
        with StoreStall(ingest.path):  # so that they reach the store in one chunk (after the first)
            for value, received_ms in sent.items():
                handover.put(_message(value, received_ms))
            assert wait_until(lambda: handover.stats().buffered == 10 and ingest.writer.stats().queued_records > 0)
        assert handover.wait_drained(30)
        stored = _stamps(ingest)
        assert {value: ts - sent[value] for value, ts in stored.items()} == {v: 0 for v in sent if v != 7.0}
        assert (handover.stats().refused, handover.stats().delivered) == (1, 9)
        handover.stop()


def test_a_writer_closed_under_a_blocked_hand_over_loses_counted_messages_never_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At the stop the hand-over thread hands every chunk to the writer until its queue is full and waits in
    ``submit``; the writer closes: that is retry-later-like, so nothing is "refused by the store"; all 40 are
    lost at stop, counted."""
    config = _line_site("/dev/null", line_pattern=PLAIN_PATTERN)
    with ingest_path(config, tmp_path / "archmon.db", max_queued_records=4, busy_timeout_s=0.5) as ingest:
        handover = Handover("logger1", ingest.pipeline.process_many, max_buffered=1000, max_chunk=2)
        with StoreStall(ingest.path):
            for i in range(40):
                handover.put(_message(float(i), now_ms()))
            assert wait_until(lambda: handover.stats().buffered == 40 and ingest.writer.stats().queued_records > 0)
            handover.stop(0.2)
            assert wait_until(lambda: ingest.writer.stats().queued_records + 2 > 4)  # full: the thread waits in it
            assert handover.stats().buffered == 40
            assert not ingest.writer.close(timeout=0.2)
            assert handover.wait_drained(10)
        stats = handover.stats()
        assert (stats.lost_at_stop, stats.refused, stats.delivered, stats.handler_errors) == (40, 0, 0, 0)
        assert not any(r.levelno >= logging.ERROR and "refused" in r.getMessage() for r in caplog.records)
        assert any("40 messages read before the stop were not stored" in r.getMessage() for r in caplog.records)


def test_a_dying_hand_over_thread_keeps_its_messages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _line_site("/dev/null", line_pattern=PLAIN_PATTERN)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        calls = []

        def sink(messages: Sequence[RawMessage]) -> Future[WriteResult]:
            calls.append(len(messages))
            if len(calls) == 1:
                raise SystemExit("not an Exception: ends the thread")
            return ingest.pipeline.process_many(messages)

        handover = Handover("logger1", sink, max_buffered=100)
        handover.put(_message(0.0, now_ms()))
        assert wait_until(lambda: any("hand-over thread failed" in r.getMessage() for r in caplog.records))
        assert handover.stats().buffered == 1  # back in the buffer, not gone
        handover.put(_message(1.0, now_ms()))  # a new thread hands both over
        assert handover.wait_drained(30)
        assert [value for _, value in ingest.stored("t1", "temperature")] == [0.0, 1.0]
        assert handover.stats().delivered == 2
        handover.stop()


def test_the_smallest_bound_keeps_the_newest_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"max_buffered_messages: Input should be greater than or equal to 2"):
        source_configs(parse_config({"sources": [{"kind": "line", "id": "l", "device": "/dev/null",
                                                  "line_pattern": PLAIN_PATTERN, "max_buffered_messages": 1}]}))
    with pytest.raises(ValueError, match="at least 2"):
        Handover("logger1", lambda messages: Future(), max_buffered=1)
    config = _line_site("/dev/null", line_pattern=PLAIN_PATTERN)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        handover = Handover("logger1", ingest.pipeline.process_many, max_buffered=2)
        with StoreStall(ingest.path):
            handover.put(_message(0.0, now_ms()))
            assert wait_until(lambda: handover.stats().in_flight == 1)
            handover.put(_message(1.0, now_ms()))
            handover.put(_message(2.0, now_ms()))
            assert (handover.stats().buffered, handover.stats().dropped) == (2, 1)
        assert handover.wait_drained(30)
        assert [value for _, value in ingest.stored("t1", "temperature")] == [0.0, 2.0]  # the oldest waiting dropped
        handover.stop()


def test_the_bound_in_bytes_drops_the_oldest_messages(tmp_path: Path) -> None:
    config = _line_site("/dev/null", line_pattern=r"T=(?P<temperature>-?\d+(?:\.\d+)?) *")
    padded = 1000  # bytes per message: ten fit in the bound
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        handover = Handover("logger1", ingest.pipeline.process_many, max_buffered=10_000,
                            max_buffered_bytes=10 * padded)
        with StoreStall(ingest.path):
            for i in range(30):
                handover.put(RawMessage("logger1", "line/logger1", f"T={i}".encode().ljust(padded), now_ms()))
                if i == 0:
                    assert wait_until(lambda: handover.stats().in_flight == 1)
            stats = handover.stats()
            assert stats.buffered_bytes <= 10 * padded
            assert (stats.buffered, stats.dropped) == (10, 20)
        assert handover.wait_drained(30)
        stored = [value for _, value in ingest.stored("t1", "temperature")]
        assert stored == [0.0, *range(21, 30)]  # the first in flight, then the newest nine
        handover.stop()


def test_a_corrupt_store_keeps_every_message_and_stores_them_once_it_is_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every message refused alike (``sqlite3.DatabaseError``) means a broken store, not bad messages: they are
    kept and retried, and the log says so in a few lines, not one per message."""
    caplog.set_level(logging.INFO)
    config = _line_site("/dev/null", line_pattern=PLAIN_PATTERN)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        handover = Handover("logger1", ingest.pipeline.process_many, max_buffered=1000, retry_max_s=0.2)
        sent = {float(i): now_ms() - 60_000 + i * 1000 for i in range(1, 21)}
        with CorruptTable(ingest.path, "readings"):
            with StoreStall(ingest.path):  # the first message (quarantined: no reading) is in flight, the rest wait
                handover.put(RawMessage("logger1", "line/logger1", b"garbage", now_ms()))
                assert wait_until(lambda: handover.stats().in_flight == 1)
                for value, received_ms in sent.items():
                    handover.put(_message(value, received_ms))
            assert wait_until(lambda: handover.stats().store_failures == 1)
            assert wait_until(lambda: handover.stats().retries >= 3)  # kept, retried with backoff
            stats = handover.stats()
            assert (stats.buffered, stats.refused, stats.delivered) == (20, 0, 1)
        assert handover.wait_drained(30)
        assert {value: ts - sent[value] for value, ts in _stamps(ingest).items()} == dict.fromkeys(sent, 0)
        assert handover.stats().refused == 0
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert 1 <= len(errors) <= 5, [r.getMessage() for r in errors]
        assert any("refuses every message alike" in r.getMessage() for r in errors)
        assert any("takes messages again" in r.getMessage() for r in caplog.records)
        handover.stop()


def test_a_corrupt_store_keeps_a_trickle_of_single_messages(tmp_path: Path) -> None:
    """One line a minute hands over chunks of one: a corrupt file is recognised from one refusal too."""
    config = _line_site("/dev/null", line_pattern=PLAIN_PATTERN)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        handover = Handover("logger1", ingest.pipeline.process_many, max_buffered=1000, retry_max_s=0.2)
        sent = now_ms() - 60_000
        with CorruptTable(ingest.path, "readings"):
            handover.put(_message(1.0, sent))
            assert wait_until(lambda: handover.stats().store_failures == 1 and handover.stats().retries >= 2)
            assert (handover.stats().buffered, handover.stats().refused) == (1, 0)
        assert handover.wait_drained(30)
        assert ingest.stored("t1", "temperature") == [(sent, 1.0)]
        handover.stop()


# -- Modbus ------------------------------------------------------------------------------------------


class Climate:
    """What the simulated transmitter measures; tests change it between polls."""

    def __init__(self) -> None:
        self.temperature = -20.5
        self.humidity = 52.3


@pytest.fixture
def climate() -> Climate:
    return Climate()


def _bus_site(device: str, **options: object) -> Config:
    return parse_config({
        "site": {"timezone": "UTC"},
        "rooms": [{"id": "r"}],
        "sources": [{"kind": "modbus", "id": "bus1", "device": device, "baudrate": 4800, "timeout_s": 0.6,
                     **options}],
        "sensors": [{"id": "th", "room": "r", "source": "bus1", "address": 1, "preset": "renke-rs-ws-n01"}],
    })


@pytest.fixture
def renke(pty_pair: PtyPair, climate: Climate) -> Iterator[ModbusSlaveSimulator]:
    sim = ModbusSlaveSimulator(pty_pair.b, baudrate=4800, devices={1: SimDevice(holding={  # Renke RS-WS-N01
        0: lambda: encode_uint16_x10(climate.humidity), 1: lambda: encode_int16_x10(climate.temperature)})})
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def _bus_source(config: Config, ingest: IngestPath) -> ModbusSource:
    (bus_config,) = configs_of(config, ModbusSourceConfig)
    return ModbusSource(bus_config, bus_devices(config, "bus1"), ingest.pipeline.process_many)


def _poll_as(source: ModbusSource, climate: Climate, temperature: float) -> None:
    climate.temperature = temperature
    answers = source.stats()["answers"]
    source.gather()
    assert source.stats()["answers"] == answers + 1


def _stored_temperatures(ingest: IngestPath) -> list[float]:
    return [value for _, value in ingest.stored("th", "temperature")]  # in time order


def test_polls_made_while_the_store_is_stalled_are_all_stored(
    tmp_path: Path, pty_pair: PtyPair, renke: ModbusSlaveSimulator, climate: Climate
) -> None:
    """A real 10 s stall with a small writer queue: polls go on and every answer is stored afterwards."""
    config = _bus_site(pty_pair.a)
    with ingest_path(config, tmp_path / "archmon.db", max_queued_records=4) as ingest:
        source = _bus_source(config, ingest)
        try:
            polled: list[float] = []
            with StoreStall(ingest.path):
                began, paced = time.monotonic(), threading.Event()
                while time.monotonic() - began < STALL_S:  # the service would call gather on its schedule
                    polled.append(round(-20.0 + len(polled) * 0.5, 1))
                    _poll_as(source, climate, polled[-1])
                    paced.wait(0.2)
                assert ingest.stored("th", "temperature") == []
                assert source.stats()["buffered"] == len(polled)
                assert ingest.writer.stats().committed_readings == 0
            assert len(polled) >= 20
            assert source.handover.wait_drained(60)
            assert _stored_temperatures(ingest) == polled
            assert len(ingest.stored("th", "humidity")) == len(polled)
            stats = source.stats()
            assert (stats["delivered"], stats["dropped"], stats["refused"]) == (len(polled), 0, 0)
        finally:
            source.stop()


def test_past_the_bound_exactly_the_counted_oldest_polls_are_dropped(
    tmp_path: Path, pty_pair: PtyPair, renke: ModbusSlaveSimulator, climate: Climate
) -> None:
    bound, polls = 6, 20
    config = _bus_site(pty_pair.a, max_buffered_messages=bound)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        source = _bus_source(config, ingest)
        try:
            temperatures = [round(-20.0 + i * 0.5, 1) for i in range(polls)]
            with StoreStall(ingest.path):
                _poll_as(source, climate, temperatures[0])
                assert wait_until(lambda: source.handover.stats().in_flight == 1)  # at the stalled store
                for temperature in temperatures[1:]:
                    _poll_as(source, climate, temperature)
                stats = source.stats()
                assert (stats["buffered"], stats["dropped"]) == (bound, polls - bound)
            assert source.handover.wait_drained(60)
            assert _stored_temperatures(ingest) == [temperatures[0], *temperatures[polls - bound + 1:]]
            assert source.stats()["dropped"] == polls - bound
        finally:
            source.stop()


def test_a_poll_the_store_refuses_for_good_is_counted_not_retried(
    tmp_path: Path, pty_pair: PtyPair, renke: ModbusSlaveSimulator, climate: Climate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _bus_site(pty_pair.a)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        refuse_value(ingest.path, 66.6)
        received: dict[int, int] = {}  # receive time of each poll's message, by message

        def sink(messages: Sequence[RawMessage]) -> Future[WriteResult]:
            received.update((id(m), m.received_ms) for m in messages)
            return ingest.pipeline.process_many(messages)

        (bus_config,) = configs_of(config, ModbusSourceConfig)
        source = ModbusSource(bus_config, bus_devices(config, "bus1"), sink)
        try:
            temperatures = [20.0, 21.0, 66.6, 22.0, 23.0]
            with StoreStall(ingest.path):  # the refused poll reaches the store in one chunk with the others
                for temperature in temperatures:
                    _poll_as(source, climate, temperature)
            assert source.handover.wait_drained(60)
            assert _stored_temperatures(ingest) == [20.0, 21.0, 22.0, 23.0]
            # handed over again one by one, each poll keeps its own receive time: none moved
            stamps = sorted(received.values())
            assert [ts for ts, _ in ingest.stored("th", "temperature")] == stamps[:2] + stamps[3:]
            stats = source.stats()
            assert (stats["refused"], stats["delivered"], stats["buffered"]) == (1, 4, 0)
            assert ingest.writer.stats().rejected >= 2  # the chunk, then the message alone: no retry loop
            (refused,) = source.handover.refused()
            assert json.loads(refused.message.payload)["address"] == 1
            assert any("refused a message for good" in r.getMessage() for r in caplog.records)
        finally:
            source.stop()
