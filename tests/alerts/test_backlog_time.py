"""Delays run in the readings' own time: a backlog delivered in device order after the clock moved on (a broker
outage, a device's buffer, the writer catching up) raises what the same readings raise live.

The live service's tick keeps the engine's clock at wall time, so a backlog's readings are all behind it; a
delay or clear delay started by one of them counts from its device time and falls due as the backlog's later
readings pass it, in device-time order. Transitions are stamped at the clock (never before an earlier one), a
delay served well behind it names its device time in the detail.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import AlertEngine
from alerts.rules import RULES
from alerts.store import AlertStore
from archmon.domain import Reading
from tests.alerts.helpers import SHANGHAI_NOON, site_config

MIN = 60_000
HOUR = 60 * MIN
T = SHANGHAI_NOON


def _engine(tmp_path: Path, db: str, *rules: str, overrides: dict | None = None) -> tuple[AlertEngine, AlertStore]:
    enabled = {name: {"enabled": name in rules} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled}, overrides=overrides or {}, sensors=("T1", "D1"))
    store = AlertStore(db)
    return AlertEngine(config, store), store


def _fired(store: AlertStore) -> list[tuple[str, int]]:
    return sorted((a["ident"], a["fire_count"]) for a in store.alerts() if a["fire_count"])


def _history(store: AlertStore) -> list[str]:
    """Every transition's state, in order (the same story, whatever its time stamps)."""
    return [row[0] for row in store.conn.execute("SELECT to_state FROM alert_transitions ORDER BY id")]


def test_band_backlog_in_device_order_after_the_clock_moved_on_fires_as_live(tmp_path: Path) -> None:
    """50 min above the band with a 15 min delay, delivered 2 h late (review finding 4): it fired live, and it
    must fire from the backlog too (before, the delay started at the clock and the in-band reading cancelled it)."""
    backlog = [Reading("T1", "temperature", 27.0 if m < 50 else 20.0, T + m * MIN, "A1") for m in range(61)]
    engine, store = _engine(tmp_path, str(tmp_path / "live.db"), "band")
    for reading in backlog:
        engine.feed(reading)
    engine.advance(T + 5 * HOUR)
    live, live_history = _fired(store), _history(store)
    store.close()

    engine, store = _engine(tmp_path, str(tmp_path / "backlog.db"), "band")
    engine.feed(Reading("T1", "temperature", 20.0, T - MIN, "A1"))
    engine.advance(T + 2 * HOUR)  # the tick at wall time during the outage
    out = []
    for reading in backlog:
        out.extend(engine.feed(reading))
    out.extend(engine.advance(T + 5 * HOUR))
    assert live == [("band:T1/temperature/high", 1)]
    assert _fired(store) == live
    assert _history(store) == live_history == ["pending", "active", "cleared", "closed"]
    active = next(t for t in out if t.state == "active")
    assert active.ts_ms == T + 2 * HOUR  # stamped at the clock, not before what it already judged
    assert active.detail == "high (device time 2024-03-04T12:15:00.000+08:00)"  # when the delay was served
    store.close()


def test_door_left_open_in_a_backlog_fires_and_clears_in_device_order(tmp_path: Path) -> None:
    engine, store = _engine(tmp_path, str(tmp_path / "a.db"), "door_open")
    engine.advance(T + HOUR)
    out = []
    for reading in (Reading("D1", "door", 1.0, T, "A1"), Reading("D1", "door", 1.0, T + 12 * MIN, "A1"),
                    Reading("D1", "door", 0.0, T + 20 * MIN, "A1")):
        out.extend(engine.feed(reading))
    assert [t.state for t in out] == ["pending", "active", "cleared"]  # open 20 min, allowed 10
    assert all(t.ts_ms == T + HOUR for t in out)
    store.close()


def test_a_maintenance_window_still_starts_the_delay_at_its_end(tmp_path: Path) -> None:
    """The one delay that does not start at the reading's own time: a violation silenced by maintenance."""
    engine, store = _engine(tmp_path, str(tmp_path / "a.db"), "band", overrides={"temperature": {"delay_s": 600}})
    engine.feed(Reading("T1", "temperature", 20.0, T, "A1"))
    engine.maintenance("A1", T + 30 * MIN, "filter change", "ops", start_ms=T)
    engine.feed(Reading("T1", "temperature", 27.0, T + MIN, "A1"))
    out = engine.advance(T + 30 * MIN)
    assert [t.state for t in out] == ["pending"]
    assert engine.advance(T + 39 * MIN) == []
    assert [t.state for t in engine.advance(T + 40 * MIN)] == ["active"]
    store.close()


# values around the paper band's high limit (24 ℃, clear margin 0.5): violated, within the margin, fine
_VALUES = st.sampled_from([25.0, 24.2, 23.0])


@settings(max_examples=60, deadline=None)
@given(values=st.lists(_VALUES, min_size=2, max_size=40), delay_min=st.sampled_from([0, 3, 7]),
       clear_min=st.sampled_from([0, 2, 5]), lag_h=st.integers(min_value=1, max_value=5))
def test_a_backlog_in_device_order_tells_the_same_story_as_live(values: list[float], delay_min: int,
                                                                clear_min: int, lag_h: int) -> None:
    """Brute force: the same readings fed live (the clock following them) and as a backlog behind a clock
    ``lag_h`` hours ahead leave the same transitions (states in order) and the same fire counts. (A delay or
    clear delay that no later reading of the backlog completes runs on the clock from the backlog's arrival,
    so the story's tail may end a few minutes later on the clock: both are advanced 2 h past their end.)"""
    overrides = {"temperature": {"delay_s": delay_min * 60, "clear_delay_s": clear_min * 60}}
    readings = [Reading("T1", "temperature", v, T + i * MIN, "A1") for i, v in enumerate(values)]
    end = readings[-1].ts_ms + HOUR
    stories = []
    for lag in (0, lag_h * HOUR + end - T):
        engine, store = _engine(Path("."), ":memory:", "band", overrides=overrides)
        if lag:
            engine.advance(T + lag)
        for reading in readings:
            engine.feed(reading)
        engine.advance(max(end, T + lag) + 2 * HOUR)
        stories.append((_history(store), _fired(store)))
        store.close()
    assert stories[0] == stories[1]
