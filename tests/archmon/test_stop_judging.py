"""A stop judges what the store committed: all of it when there is time; smoke and leak at once when the
alert engine cannot keep up, the rest kept beside the database and handed to the engine at the next start,
before anything new. The last counters are stored after the last commit and the last judgement, and states
(series, window sizes) are not added up over restarts. (A real Service on real SQLite files; the engine is
held up by a job on its own feed that waits, as a stalled alert database would hold it.)"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from archmon.app import Service
from archmon.app.feed import Availability, Backlog, save_backlog
from archmon.config import load_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.store import SqliteStore
from tests.archmon.sites import alerts, batch, line_site
from tests.fixtures.waiting import wait_for

T0 = now_ms() - 3_600_000


def _temperatures(batches: int, per: int = 5) -> list[list[Reading]]:
    return [[Reading(f"t{i}", "temperature", 20.0 + k / 100, T0 + k * 1000 + i, "paper") for i in range(per)]
            for k in range(batches)]


def test_what_the_stop_cannot_judge_is_smoke_first_then_kept_and_judged_at_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = line_site(tmp_path, stop_timeout_s=3)
    service = Service(load_config(path))
    service.start()
    release = threading.Event()
    late_use: list[BaseException | None] = []

    def engine_held() -> None:  # what the feed is inside when the stop comes; it uses the engine afterwards
        release.wait(60)
        try:
            service.alerts.on_readings([Reading("t0", "temperature", 19.0, T0 - 5000, "paper")])
            late_use.append(None)
        except BaseException as exc:  # the store closed under it
            late_use.append(exc)

    service._alert_feed.call("test: the engine held", engine_held)
    temperatures = _temperatures(40)
    smoke = Reading("smoke0", "smoke", 1.0, T0 + 20_500, "paper")
    for k, readings in enumerate(temperatures):
        service._submit(batch(*readings, *([smoke] if k == 20 else [])))
    assert service.writer.flush(30)
    report = service.stop()

    assert report.judged_urgent == 0  # the feed's urgent lane judged it as soon as it was committed
    assert alerts(service.db_path) == [("smoke", "smoke0", "active")]  # ahead of the 200 readings before it
    assert report.unjudged == 200 and not report.complete
    assert "200 stored reading(s) not judged by the alert rules yet" in report.summary()
    assert any("alert feed is still in it" in step for step in report.unfinished)  # its store was left open
    assert service.backlog_path.exists()
    release.set()
    wait_for(lambda: not service._alert_feed.alive, "the held feed to end after its item")
    assert late_use == [None]  # its database was still open for it (no "Cannot operate on a closed database")
    assert "closed database" not in caplog.text

    # the next start hands the kept readings to the engine before anything it stores itself
    again = Service(load_config(path))
    handed: list[tuple[list[Reading], list[Availability]]] = []
    again.alerts.judge_backlog = lambda readings, availability: handed.append((list(readings), list(availability)))
    again.start()
    try:
        wait_for(lambda: handed, "the backlog handed to the engine")
        wait_for(lambda: not again.backlog_path.exists(), "the backlog file removed once judged")
    finally:
        again.stop()
    (readings, availability), = handed
    assert sorted(readings, key=lambda r: (r.ts_ms, r.sensor)) == [r for rs in temperatures for r in rs]
    assert availability == []


def test_the_backlog_is_judged_once_its_new_readings_at_start_its_late_ones_and_availability_from_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The kept readings are in the store: those after what the engine had judged of their series are judged
    as soon as it starts (alerts.catchup, which also covers a crash); the late ones (older than that) and the
    availability changes come from the file, each judged once."""
    path = line_site(tmp_path)
    service = Service(load_config(path))  # makes the database; judges a first reading of each series
    service.start()
    service._submit(batch(Reading("smoke0", "smoke", 0.0, T0, "paper"),
                          Reading("t0", "temperature", 20.0, T0, "paper")))
    assert service.writer.flush(30) and service._alert_feed.join(30)
    service.stop()
    stored = [Reading("smoke0", "smoke", 1.0, T0 + 60_000, "paper"),  # after the watermark
              Reading("t0", "temperature", 20.5, T0 + 60_000, "paper"),
              Reading("t0", "temperature", 20.2, T0 - 60_000, "paper")]  # late: older than the watermark
    store = SqliteStore(service.db_path, tz=service.config.site.tz)
    store.write_many([batch(*stored)])
    store.close()
    save_backlog(service.backlog_path, Backlog(tuple(stored), (Availability("t1", "offline", T0 + 60_000),)))
    caplog.set_level(logging.INFO)
    again = Service(load_config(path))
    again.start()
    try:
        assert again._alert_feed.join(60)  # the catch-up is the feed's first item
        assert again.alerts.stats()["caught_up"] == 2  # the smoke alarm and the newer temperature, at start
        assert ("smoke", "smoke0", "active") in alerts(again.db_path)
        wait_for(lambda: not again.backlog_path.exists(), "the backlog taken")
        assert again._alert_feed.join(30)
        stats = again.alerts.stats()
        assert stats["late_readings"] == 1 and stats["readings_judged"] == 3  # each reading judged once
        assert ("stale", "t1", "active") in alerts(again.db_path)  # the offline message, from the file
    finally:
        again.stop()
    assert "took the 3 reading(s) and 1 availability change(s) the last run stored" in caplog.text


def test_every_stored_reading_is_judged_and_counted_by_the_end_of_a_stop(tmp_path: Path) -> None:
    """The last counters are stored after the final flush and the feed's last judgement (they used to be taken
    before both: status showed fewer judged than stored)."""
    path = line_site(tmp_path)
    for run in range(3):
        service = Service(load_config(path))
        service.start()
        for readings in _temperatures(300):
            service._submit(batch(*[Reading(r.sensor, r.quantity, r.value, r.ts_ms + run * 400_000, r.room)
                                    for r in readings]))
        report = service.stop()  # no flush first: the stop's own flush and drain
        assert report.complete, report.summary()
    with sqlite3.connect(service.db_path) as conn:
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        gauges = {name: value for name, value, _ in conn.execute("SELECT name, value, ts_ms FROM gauges")}
    assert counters["stored"] == 3 * 1500
    assert counters["alerts.readings_judged"] == 3 * 1500
    assert gauges["alerts.series"] == 5  # a state: five series, not five per restart
    assert 0 < gauges["alerts.lock_hold_max_us"] < 60_000_000  # a state (a longest hold), not a sum
    assert gauges["service.running"] == 0
    for state in ("alerts.series", "alerts.window_bytes", "alerts.rebuilt_series", "alerts.state_write_max_us",
                  "alerts.lock_hold_max_us"):
        assert state not in counters, state


def test_a_stop_during_a_stall_reports_exactly_what_it_did_not_commit(tmp_path: Path) -> None:
    """``not_committed`` is read after the writer gave up (not before), ``store writer`` is unfinished
    because close() said so: the report matches what the file holds."""
    from tests.fixtures.store_stall import StoreStall

    path = line_site(tmp_path, stop_timeout_s=2)
    service = Service(load_config(path))
    service.start()
    service._submit(batch(*_temperatures(1)[0]))
    # the counters the start reports (a scheduler job) must be stored before the stall, or they are one
    # record more not committed
    wait_for(lambda: "service.running" in service.store.gauges(), "the start's counters stored")
    assert service.writer.flush(10)
    with StoreStall(service.db_path):
        for readings in _temperatures(30)[1:]:
            service._submit(batch(*readings))
        report = service.stop()
    # the 29 batches of readings, and whatever else the service queued meanwhile (a source's state record)
    assert report.not_committed == report.queued_at_start >= 29 * 5 and report.stored == 0
    assert "store writer" in report.unfinished and not report.complete
    assert f"{report.not_committed} record(s) not committed" in report.summary()
    assert report.elapsed_s <= report.bound_s + 0.5, report.summary()
    with sqlite3.connect(service.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 5


def test_a_smoke_alarm_during_a_store_stall_is_logged_at_once_and_judged_once_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine judges only what the store committed (its alerts are in the same file, which takes no write
    during a stall either: see docs/alerts.md); the alarm is said in the log at once, and alerted as soon as
    the stall ends."""
    from tests.fixtures.store_stall import StoreStall

    path = line_site(tmp_path)
    service = Service(load_config(path))
    service.start()
    try:
        with StoreStall(service.db_path):
            service._submit(batch(Reading("t0", "temperature", 20.0, T0, "paper")))
            wait_for(lambda: service.writer.stats().retrying, "the writer retrying")
            service._submit(batch(Reading("smoke0", "smoke", 1.0, T0, "paper")))
            assert "smoke alarm from smoke0 received while the store cannot be written" in caplog.text
            assert alerts(service.db_path) == []
        wait_for(lambda: ("smoke", "smoke0", "active") in alerts(service.db_path), "the smoke alert after the stall")
    finally:
        service.stop()
