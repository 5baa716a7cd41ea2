"""The disk spool of serial sources (``collector/spool.py``, ``collector/_handover_spill.py``): a stall longer
than the memory bound loses nothing, a SIGKILL of ``archmon run`` while spilled loses nothing, and past its
byte bound a spool drops exactly the counted oldest lines. Real ptys (the line-sensor simulator, socat for
``archmon run``), a real SQLite file locked by another connection, the real ingest path."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from archmon.config import Config, parse_config
from archmon.domain import RawMessage
from collector.handover import Handover
from collector.modbus import ModbusSource, bus_devices
from collector.modbus_config import ModbusSourceConfig
from collector.pipeline import Pipeline
from collector.serial_line import SerialLineSource
from collector.serial_line_config import LineSourceConfig
from collector.sources import configs_of, source_problems
from collector.spool import ROW_OVERHEAD, Spool, spool_dir, spool_path
from devices.simulators.line_sensor import LineSensorSimulator
from devices.simulators.modbus_slave import ModbusSlaveSimulator
from devices.simulators.pty_pair import PtyPair
from tests.collector.test_handover import (
    TS0,
    Climate,
    _bus_site,
    _line,
    _line_site,
    _poll_as,
    _stored_lines,
    _stored_temperatures,
    climate,  # noqa: F401 - fixture
    renke,  # noqa: F401 - fixture
)
from tests.fixtures.serial_ports import SocatPair, wait_until
from tests.fixtures.store_stall import IngestPath, StoreStall, ingest_path
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def line_sensor(pty_pair: PtyPair) -> Iterator[LineSensorSimulator]:
    sim = LineSensorSimulator(pty_pair.b, dict, interval_s=None)
    sim.open()
    try:
        yield sim
    finally:
        sim.stop()


def _spooled_source(config: Config, ingest: IngestPath, folder: Path) -> tuple[SerialLineSource, Spool]:
    (line_config,) = configs_of(config, LineSourceConfig)
    spool = Spool(spool_path(folder, "logger1"), "logger1", max_bytes=line_config.spool_max_bytes)
    return SerialLineSource(line_config, ingest.pipeline.process_many, spool=spool), spool


def _waiting_in_memory(handover: Handover) -> int:
    stats = handover.stats()
    return stats.buffered - stats.in_flight


def test_a_stall_longer_than_the_memory_bound_spills_to_disk_and_every_line_is_stored(
    tmp_path: Path, pty_pair: PtyPair, line_sensor: LineSensorSimulator
) -> None:
    bound, count = 20, 300
    config = _line_site(pty_pair.a, max_buffered_messages=bound)
    with ingest_path(config, tmp_path / "archmon.db", max_queued_records=16) as ingest:
        source, spool = _spooled_source(config, ingest, tmp_path / "spool")
        source.start()
        try:
            assert wait_until(lambda: source.connected)
            with StoreStall(ingest.path):
                for i in range(count):
                    # once spilled, a sensor's pace against the disk's: the memory bound also holds what waits for
                    # a spool write (a burst of 300 lines in one read would overflow 20)
                    assert i <= bound or wait_until(lambda i=i: source.stats()["lines"] == i
                                                    and _waiting_in_memory(source.handover) < 5)
                    line_sensor.write_line(_line(i))
                assert wait_until(lambda: source.stats()["lines"] == count)
                # every line is on disk (those in flight as a copy): none only in memory, none dropped
                assert wait_until(lambda: spool.stats().rows == count)
                stats = source.stats()
                assert (stats["dropped"], stats["delivered"], stats["spool_rows"]) == (0, 0, count)
                assert stats["spool_oldest_ms"] > 0 and stats["spool_bytes"] > 0
                assert ingest.stored("t1", "temperature") == []
            assert source.handover.wait_drained(60)
            assert _stored_lines(ingest) == list(range(count))  # each once (a primary key would refuse twice)
            stats = source.stats()
            assert (stats["delivered"], stats["dropped"], stats["refused"], stats["buffered"]) == (count, 0, 0, 0)
            assert stats["spilled"] == count
            assert spool.stats().rows == 0
            # back in memory: the next line is stored without touching the spool
            line_sensor.write_line(_line(count))
            assert wait_until(lambda: source.stats()["delivered"] == count + 1)
            assert source.stats()["spilled"] == count
        finally:
            source.stop()


def test_a_spool_past_its_byte_bound_drops_exactly_the_counted_oldest_lines(
    tmp_path: Path, pty_pair: PtyPair, line_sensor: LineSensorSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    count, fits = 200, 50  # the spool holds 50 lines (all lines are the same size)
    row = len(b"line/logger1") + len(_line(100).encode()) + ROW_OVERHEAD
    assert all(len(_line(i)) == len(_line(100)) for i in range(100, count))
    config = _line_site(pty_pair.a, max_buffered_messages=2, spool_max_bytes=fits * row)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        source, _ = _spooled_source(config, ingest, tmp_path / "spool")
        source.start()
        try:
            assert wait_until(lambda: source.connected)
            with StoreStall(ingest.path):
                line_sensor.write_line(_line(100))  # in flight to the stalled store (its copy is spooled, kept)
                assert wait_until(lambda: source.handover.stats().in_flight == 1)
                for i in range(101, count):
                    assert wait_until(lambda i=i: source.stats()["lines"] == i - 100
                                      and _waiting_in_memory(source.handover) <= 1)  # the spool took the others
                    line_sensor.write_line(_line(i))
                assert wait_until(lambda: source.stats()["lines"] == count - 100)
                assert wait_until(lambda: source.stats()["spilled"] - source.stats()["dropped"] == fits)
                assert wait_until(lambda: source.handover.stats().buffered == 1)  # nothing left in memory
                stats = source.stats()
                assert stats["spool_rows"] == fits and stats["spool_bytes"] <= fits * row
                assert stats["spool_warning"] == 1
            assert source.handover.wait_drained(60)
            stored = _stored_lines(ingest)
            # the line in flight, then the newest that fit; the oldest not yet handed over were dropped
            assert stored == [100, *range(count - fits + 1, count)]
            assert source.stats()["dropped"] == count - 100 - len(stored) == count - 100 - fits
            assert any("the spool is full" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
            assert any("past the bound its oldest are dropped" in r.getMessage() for r in caplog.records)
        finally:
            source.stop()


def test_a_spool_left_by_an_earlier_run_is_stored_first_and_once(tmp_path: Path) -> None:
    """Rows a crashed run left are read at start, before new messages; rows already stored (a copy of the chunk
    in flight at the crash) are ignored by the store, not stored twice."""
    config = _line_site("/dev/null", line_pattern=r"T=(?P<temperature>-?\d+(?:\.\d+)?)")
    received = [TS0 + i * 1000 for i in range(10)]
    folder = tmp_path / "spool"
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        first = Handover("logger1", ingest.pipeline.process_many, max_buffered=100)
        for i in range(3):  # stored before the "crash"
            first.put(RawMessage("logger1", "line/logger1", f"T={i}".encode(), received[i]))
        assert first.wait_drained(30)
        first.stop()
        left = Spool(spool_path(folder, "logger1"), "logger1")
        left.append([RawMessage("logger1", "line/logger1", f"T={i}".encode(), received[i]) for i in range(10)])
        left.close()
        spool = Spool(spool_path(folder, "logger1"), "logger1")
        restarted = Pipeline(config, ingest.writer.submit)  # a new process: a pipeline that saw none of them
        handover = Handover("logger1", restarted.process_many, max_buffered=100, spool=spool)
        assert handover.stats().spool_rows == 10
        handover.put(RawMessage("logger1", "line/logger1", b"T=10", handover.stamp()))
        assert handover.wait_drained(30)
        stored = ingest.stored("t1", "temperature")
        assert [value for _, value in stored] == [float(i) for i in range(11)]
        assert [ts for ts, _ in stored][:10] == received
        assert stored[10][0] > received[-1]
        assert ingest.writer.stats().duplicates == 3
        assert (handover.stats().spool_rows, handover.stats().delivered) == (0, 11)
        handover.stop()


def test_polls_past_the_memory_bound_spill_and_are_all_stored(
    tmp_path: Path, pty_pair: PtyPair, renke: ModbusSlaveSimulator, climate: Climate  # noqa: F811 - fixtures
) -> None:
    bound, polls = 4, 16
    config = _bus_site(pty_pair.a, max_buffered_messages=bound)
    (bus_config,) = configs_of(config, ModbusSourceConfig)
    with ingest_path(config, tmp_path / "archmon.db") as ingest:
        spool = Spool(spool_path(tmp_path / "spool", "bus1"), "bus1")
        source = ModbusSource(bus_config, bus_devices(config, "bus1"), ingest.pipeline.process_many, spool=spool)
        try:
            temperatures = [round(-20.0 + i * 0.5, 1) for i in range(polls)]
            with StoreStall(ingest.path):
                for temperature in temperatures:
                    _poll_as(source, climate, temperature)
                assert wait_until(lambda: spool.stats().rows == polls)
                assert source.stats()["dropped"] == 0
            assert source.handover.wait_drained(60)
            assert _stored_temperatures(ingest) == temperatures
            assert (source.stats()["delivered"], source.stats()["spool_rows"]) == (polls, 0)
        finally:
            source.stop()


# -- archmon run, killed while spilled ------------------------------------------------------------------


def _run_config(folder: Path, device: str) -> Path:
    path = folder / "archmon.toml"
    path.write_text(
        '[site]\nname = "spool"\ntimezone = "UTC"\n[http]\nenabled = false\n'
        f'[storage]\nsqlite_path = "{folder / "archmon.db"}"\n'
        'flush_interval_ms = 20\n[[rooms]]\nid = "r"\n'
        f'[[sources]]\nkind = "line"\nid = "logger1"\ndevice = "{device}"\nmax_buffered_messages = 20\n'
        "line_pattern = '(?P<ts>\\d+) T=(?P<temperature>-?\\d+(?:\\.\\d+)?)'\nreconnect_max_s = 0.2\n"
        '[[sensors]]\nid = "t1"\nroom = "r"\nsource = "logger1"\nkind = "temperature"\n',
        encoding="utf-8")
    return path


def _stored_ts(db: Path) -> list[int]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return [int(ts) for (ts,) in conn.execute("SELECT ts FROM readings ORDER BY ts")]
    except sqlite3.OperationalError:  # tables not created yet
        return []


def _spool_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _run(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "archmon", "run", "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
def test_a_kill_of_archmon_run_while_spilled_loses_nothing_and_stores_each_line_once(tmp_path: Path) -> None:
    pair = SocatPair(tmp_path)
    pair.replug()
    config = _run_config(tmp_path, pair.a)
    db = tmp_path / "archmon.db"
    spool = spool_path(spool_dir(db), "logger1")
    log = tmp_path / "run.log"
    count = 300
    sensor = LineSensorSimulator(pair.b, dict, interval_s=None)
    sensor.open()
    proc = _run(config, log)
    try:
        def first_line_stored() -> bool:  # written again until the service has the port open (the same reading)
            sensor.write_line(_line(0))
            return wait_until(lambda: _stored_ts(db) == [TS0], 0.5)

        wait_for(first_line_stored, f"the first line stored\n{log.read_text()[-2000:]}")
        with StoreStall(db):
            for i in range(1, count):
                if i > 30:  # spilled (past 20 in memory): the sensor's pace against the disk's
                    wait_for(lambda i=i: _spool_rows(spool) >= i - 10, f"line {i - 10} spooled")
                sensor.write_line(_line(i))
            # all on disk: the waiting ones, and a copy of those handed to the stalled store
            wait_for(lambda: _spool_rows(spool) == count - 1, f"{count - 1} lines spooled\n{log.read_text()[-2000:]}")
            status = subprocess.run([sys.executable, "-m", "archmon", "status", "--config", str(config)], cwd=ROOT,
                                    capture_output=True, text=True, timeout=60)
            assert f"{count - 1} in the disk spool" in status.stdout, status.stdout + status.stderr
            assert "oldest 1970" not in status.stdout
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert _stored_ts(db) == [TS0]
        proc = _run(config, log)
        wait_for(lambda: len(_stored_ts(db)) >= count, f"all {count} lines stored\n{log.read_text()[-2000:]}")
        sensor.write_line(_line(count))  # and the port is read again after the replay
        wait_for(lambda: len(_stored_ts(db)) == count + 1, "a line after the restart")
        wait_for(lambda: _spool_rows(spool) == 0, "the spool emptied")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        sensor.stop()
        pair.close()
    assert _stored_ts(db) == [TS0 + i * 1000 for i in range(count + 1)]  # every line, each exactly once
    assert "holds 299 messages not stored by an earlier run" in log.read_text()


def test_check_config_names_a_spool_it_cannot_use(tmp_path: Path) -> None:
    db = tmp_path / "data" / "archmon.db"

    def problems() -> list[str]:
        return source_problems(parse_config({
            "storage": {"sqlite_path": str(db)}, "rooms": [{"id": "r"}],
            "sources": [{"kind": "line", "id": "logger1", "device": "/dev/null",
                         "line_pattern": r"T=(?P<temperature>\d+)"}],
            "sensors": [{"id": "t1", "room": "r", "source": "logger1", "kind": "temperature"}]}))

    assert problems() == []  # nothing there yet: the folder would be made
    spool = spool_path(spool_dir(db), "logger1")
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"not a database, not a spool" * 100)
    (problem,) = problems()
    assert "sources[0] (logger1).spool_max_bytes" in problem and "is not a spool archmon can read" in problem
    spool.unlink()
    Spool(spool, "logger1").close()
    assert problems() == []
