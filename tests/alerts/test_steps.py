"""One hold of the engine lock does a bounded amount of work, whatever falls due at once.

After a restart or a broker outage every sensor shares one stale deadline; the stale rule used to turn all
of them into conditions in one step, so the tick held the lock (and smoke waited) for seconds (review
finding 2). Conditions and transitions now count against the step's budget (:mod:`alerts._steps`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from alerts._steps import STEP_BUDGET, TRANSITION_COST
from alerts.engine import AlertEngine
from alerts.rules import RULES
from alerts.rules.stale import StaleRule
from alerts.service import AlertService
from alerts.store import AlertStore
from archmon.domain import Reading
from archmon.hub import EventHub
from archmon.timeutil import now_ms
from tests.alerts.helpers import SHANGHAI_NOON, site_config
from tests.fixtures.waiting import wait_for

MIN = 60_000
T = SHANGHAI_NOON
MOST = STEP_BUDGET // TRANSITION_COST + StaleRule.DUE_SLICE  # transitions one step can make at most


def test_every_sensor_going_stale_at_once_is_judged_in_bounded_steps(tmp_path: Path) -> None:
    sensors = tuple(f"T{i:04d}" for i in range(600))
    enabled = {name: {"enabled": name == "stale"} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled}, sensors=sensors)
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(config, store)
    engine.feed_many([Reading(s, "temperature", 20.0, T, "A1") for s in sensors])
    steps = []
    while True:
        with store.batch():
            steps.append(engine.advance(T + 10 * MIN, budget=STEP_BUDGET))
        if not engine.due(T + 10 * MIN):
            break
    assert sum(len(step) for step in steps) == 600  # every one of them, once
    assert all(t.rule == "stale" and t.state == "active" for step in steps for t in step)
    assert len(steps) > 1 and max(len(step) for step in steps) <= MOST
    store.close()


def test_a_feed_step_judges_readings_only_after_the_timers_due_before_them(tmp_path: Path) -> None:
    """A slice of readings waits for the timers due at its time (they may be many), in bounded steps; smoke
    does not wait for them."""
    sensors = (*(f"T{i:04d}" for i in range(300)), "S1")
    enabled = {name: {"enabled": name in ("stale", "smoke")} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled}, sensors=sensors)
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(config, store)
    engine.feed_many([Reading(s, "temperature", 20.0, T, "A1") for s in sensors[:-1]])
    late = T + 10 * MIN
    smoke = engine.feed_part([Reading("S1", "smoke", 1.0, late, "A1")], budget=STEP_BUDGET, wait_for_due=False)
    assert smoke.judged == 1 and ("smoke", "active") in [(t.rule, t.state) for t in smoke.transitions]
    assert engine.due(late)  # the stale deadlines it jumped are still to run
    part = engine.feed_part([Reading("T0000", "temperature", 20.0, late, "A1")], budget=STEP_BUDGET)
    assert part.judged == 0 and 0 < len(part.transitions) <= MOST
    while not part.judged:
        part = engine.feed_part([Reading("T0000", "temperature", 20.0, late, "A1")], budget=STEP_BUDGET)
    assert not engine.due(late)
    states = {a["ident"]: a["state"] for a in store.alerts()}
    assert sum(1 for ident in states if ident.startswith("stale:")) == 301  # the detector too: silent since start
    assert states["stale:S1"] == "cleared"  # (gone stale in the smoke's step, cleared by the smoke reading)
    store.close()


def test_smoke_is_judged_while_the_tick_works_through_a_mass_of_stale_sensors(tmp_path: Path) -> None:
    """The tick releases the lock between steps, so a smoke reading gets in long before the tick is through
    (before, the first stale alert was committed with the last, and the smoke came after all of them)."""
    sensors = (*(f"T{i:05d}" for i in range(2000)), "S1")
    config = site_config(tmp_path, sensors=sensors)
    hub = EventHub()
    events = hub.subscribe(["alert"], maxsize=10_000)
    service = AlertService(config, tmp_path / "archmon.db", hub=hub)
    t0 = now_ms() - 10 * MIN  # every sensor last heard 10 min ago: stale after 3 x 60 s
    service.on_readings([Reading(s, "temperature", 20.0, t0, "A1") for s in sensors[:-1]]
                        + [Reading("S1", "smoke", 0.0, t0, "A1")])
    seen: list[str] = []
    ticker = threading.Thread(target=service.tick)
    ticker.start()
    try:
        wait_for(lambda: bool(seen.extend(f"{e.data.rule} {e.data.state}" for e in events.drain()) or seen),
                 "the first stale alert")
        service.on_readings([Reading("S1", "smoke", 1.0, now_ms(), "A1")])
    finally:
        ticker.join()
    seen.extend(f"{e.data.rule} {e.data.state}" for e in events.drain())
    service.stop()
    assert seen.count("stale active") == 2001
    assert seen.index("smoke active") < 1000, f"smoke judged after {seen.index('smoke active')} stale alerts"


def test_a_failing_day_everywhere_is_judged_in_bounded_steps_at_midnight(tmp_path: Path) -> None:
    sensors = tuple(f"T{i:04d}" for i in range(200))
    enabled = {name: {"enabled": name == "stability"} for name in RULES}
    config = site_config(tmp_path, alerts={"rules": enabled, "stability": {"min_coverage": 0}}, sensors=sensors)
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(config, store)
    day = T - 12 * 60 * MIN + MIN  # 00:01 local
    for hour in range(23):  # a 5 ℃ swing every day: every sensor fails the 2 ℃ limit
        engine.feed_many([Reading(s, "temperature", 18.0 + 5 * (hour % 2), day + hour * 60 * MIN, "A1")
                          for s in sensors])
    midnight = day - MIN + 24 * 60 * MIN
    steps = []
    while engine.due(midnight + MIN):
        with store.batch():
            steps.append(engine.advance(midnight + MIN, budget=STEP_BUDGET))
    assert sum(len(step) for step in steps) == 200
    assert max(len(step) for step in steps) <= STEP_BUDGET // TRANSITION_COST + 50
    store.close()
