"""What late readings cost under the engine lock (review of fix 6, finding 3): the stored readings they need
are read once per series and every read is charged to the step's budget, so smoke waits at most one step.

Before: each late out-of-band reading queried the readings store (up to four times, widening the look-back
to 64 h) inside the step, uncounted: 1,000 late readings of 4 series held the lock 19.6 s in one step and a
smoke reading waited behind it. Counted here on a real ``SqliteStore`` (its read calls counted, nothing
replaced), never on the clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alerts._steps import STEP_BUDGET
from alerts.engine import AlertEngine
from alerts.rules import RULES
from alerts.store import AlertStore
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000
T = SHANGHAI_NOON


class CountingHistory:
    """The real readings store, its raw reads counted."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.series_calls = 0
        self.rows = 0

    def series(self, *args: Any) -> list[tuple[int, float]]:
        self.series_calls += 1
        rows = self.store.series(*args)
        self.rows += len(rows)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _above_band(tmp_path: Path, sensors: tuple[str, ...]) -> tuple[AlertEngine, CountingHistory, list[Reading]]:
    """Sensors above the band for a day, judged; then the late readings (30 s after each of the last 250 min),
    stored before the engine sees them."""
    enabled = {name: {"enabled": name == "band"} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled}, sensors=sensors,
                         overrides={"temperature": {"low": 14, "high": 24}})
    store = SqliteStore(tmp_path / "readings.db", tz=config.site.tz)
    engine = AlertEngine(config, AlertStore(":memory:"))
    history = CountingHistory(store)
    engine.history.source = history
    day = [Reading(s, "temperature", 30.0, T + m * MIN, "A1") for m in range(1440) for s in sensors]
    store.write_many([Batch(readings=day)])
    for start in range(0, len(day), 1000):
        engine.feed_many(day[start:start + 1000])
    late = [Reading(s, "temperature", 30.0, T + (1437 - m) * MIN + 30_000, "A1") for m in range(250)
            for s in sensors]
    store.write_many([Batch(readings=late)])
    return engine, history, late


def test_late_readings_read_each_series_once_and_change_nothing_inside_a_run(tmp_path: Path) -> None:
    sensors = ("T1", "T2", "T3", "T4")
    engine, history, late = _above_band(tmp_path, sensors)
    before = history.series_calls
    rest = late
    steps = 0
    while rest:
        part = engine.feed_part(rest, budget=STEP_BUDGET)
        assert part.transitions == []  # inside the excursion already alerted: nothing new
        rest = rest[part.judged:]
        steps += 1
    assert engine.counters.late_readings == len(late)
    assert history.series_calls - before == len(sensors)  # one read per series (before: about 4 per reading)
    assert steps >= 2  # the reads are charged: the first step ends early instead of holding the lock
    history.store.close()


def test_a_step_of_late_readings_ends_within_its_budget(tmp_path: Path) -> None:
    """Late readings of many series each need a read of about 1,500 rows: a step takes only as many as its
    budget pays for (the rest go on in the next steps, smoke and the tick getting the lock in between)."""
    sensors = tuple(f"T{i}" for i in range(12))
    engine, history, late = _above_band(tmp_path, sensors)
    one_each = [r for r in late if r.ts_ms == late[0].ts_ms]
    part = engine.feed_part(one_each, budget=STEP_BUDGET)
    assert 1 <= part.judged < len(one_each)
    history.store.close()
