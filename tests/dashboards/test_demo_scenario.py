"""The demo's live script, driven in-process at chosen times (no waiting): after the month of history, the
live alert service raises exactly the alerts of the scripted events, each at the real time its condition
holds, nothing before the first event, and clears each once its condition is over."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from alerts import AlertService
from alerts.access import AccessRegister
from alerts.model import Transition
from archmon.hub import EventHub
from archmon.timeutil import now_ms
from dashboards.demo.controlled import LiveControlledRoom
from dashboards.demo.scenario import SCRIPT, SCRIPT_MS, LiveScenario
from tests.dashboards.demo_site import TZ, WrittenHistory, live_readings, write_demo_history

STEP_MS = 10_000  # the live simulators report every few seconds; 10 s is enough to see every edge
# The history ends when the fixture runs, as in `archmon demo`: the live alert service's clock is the wall clock,
# and readings behind it would be judged as those of a device whose clock lags (delays served by device time).
# Set by the fixture (the module is imported minutes before it runs in a whole-suite run).
START_MS = 0
AT: dict[str, int] = {}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[list[Transition], LiveScenario, list[tuple[int, str]], Path]:
    """The live script run through the live alert service at 10-second steps, from its start to its end."""
    global START_MS
    end_ms = now_ms() // 60_000 * 60_000
    START_MS = end_ms + 20_000  # the history takes a few seconds, the live part starts after it
    AT.update({event.key: START_MS + int(event.at_s * 1000) for event in SCRIPT})
    history: WrittenHistory = write_demo_history(tmp_path_factory.mktemp("demo-live"), end_ms)
    hub = EventHub()
    seen = hub.subscribe(["alert"], name="test", maxsize=100_000)
    service = AlertService(history.config, history.db, hub=hub)
    register = AccessRegister(history.db)
    scenario = LiveScenario(history.summary.site, START_MS, TZ)
    assert history.summary.controlled is not None
    # the controlled room goes on from the history's state; its dehumidifier stays off (no controller here)
    controlled = LiveControlledRoom(copy.deepcopy(history.summary.controlled), lambda: False, START_MS)
    announced: list[tuple[int, str]] = []
    try:
        for ts in range(START_MS, START_MS + SCRIPT_MS, STEP_MS):
            announced += [(ts, event.key) for event in scenario.step(ts, register)]
            service.on_readings(list(live_readings(scenario.values, ts, controlled)))
    finally:
        register.close()
        service.stop()
    transitions = [event.data for event in seen.drain()]
    # the film store's hygrometer was calibrated 350 days ago: its "calibration due soon" warning is the demo's
    # standing state (the sensors page shows it), not one of the scripted events
    due = {(t.rule, t.sensor, t.state) for t in transitions if t.rule == "calibration_due"}
    assert due <= {("calibration_due", "film-th", "active")}, due
    return [t for t in transitions if t.rule != "calibration_due"], scenario, announced, history.db


def _fired(transitions: list[Transition]) -> dict[tuple[str, str | None], Transition]:
    return {(t.rule, t.sensor): t for t in transitions if t.state == "active"}


def test_each_scripted_event_raises_exactly_the_alerts_a_real_room_would(live: tuple) -> None:
    transitions, _, announced, _ = live
    assert announced == [(AT[key], key) for key in ("dehumidifier_back", "rh_excursion", "door_left_open",
                                                     "smoke_test", "unregistered_entry")]
    fired = _fired(transitions)
    assert set(fired) == {("rate", "paper-th"), ("stability_24h", "paper-th"), ("band", "paper-th"),
                          ("door_open", "film-door"), ("smoke", "paper-smoke"), ("unregistered_entry", "paper-door")}
    assert all(t.quantity == "humidity" for (rule, _), t in fired.items() if rule in ("rate", "stability_24h", "band"))
    # nothing before the first event: no compressed day behind real timestamps
    assert min(t.ts_ms for t in transitions) >= AT["rh_excursion"]
    rh = AT["rh_excursion"]
    # the band alert fires once RH has been above 60 % for the room's 5-minute delay
    band = fired[("band", "paper-th")]
    pending = next(t for t in transitions if t.rule == "band" and t.state == "pending")
    assert band.ts_ms - pending.ts_ms == 300_000 and rh < pending.ts_ms < rh + 6 * 60_000
    assert band.value is not None and band.value > 60
    assert rh < fired[("rate", "paper-th")].ts_ms < band.ts_ms  # the swing over 5 %RH comes before the delay ends
    # the door left open: the alert after the 10 minutes it may stand open
    door = fired[("door_open", "film-door")]
    assert door.ts_ms == AT["door_left_open"] + 600_000
    assert fired[("smoke", "paper-smoke")].ts_ms == AT["smoke_test"]  # at once, critical
    assert fired[("smoke", "paper-smoke")].severity == "critical"
    # the entry nobody registered: judged once its 60 s grace is over
    entry = fired[("unregistered_entry", "paper-door")]
    assert AT["unregistered_entry"] + 60_000 <= entry.ts_ms <= AT["unregistered_entry"] + 60_000 + STEP_MS


def test_the_script_s_alerts_clear_when_their_conditions_end_and_the_visit_was_registered(live: tuple) -> None:
    transitions, scenario, _, db = live
    fired = _fired(transitions)
    cleared = {(t.rule, t.sensor) for t in transitions if t.state == "cleared"}
    # the conditions that end with the event clear; the swing stays in the rate's 1 h window and the 24 h range
    # in the stability window after RH is back: those two clear later, as they would in a real store
    assert cleared == set(fired) - {("rate", "paper-th"), ("stability_24h", "paper-th")}
    register = AccessRegister(db)
    try:
        visits = register.sessions(room="film", start_ms=START_MS)
    finally:
        register.close()
    visit = next(s for s in visits if s.approval == "DA-LIVE-01")
    assert visit.opened_ms == AT["door_left_open"] - 20_000 and visit.closed_ms == AT["door_left_open"] + 120_000
    assert len(visit.people) == 2
    assert not [s for s in visits if s.is_open] or all(s.opened_ms > START_MS for s in visits if s.is_open)
    assert [event.key for event in scenario.upcoming()] == ["humid_spell"]  # the controlled room's, at +45 min
