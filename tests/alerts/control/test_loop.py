"""The control loop as pure logic: set-points with hysteresis, equipment protection, hours, stale sensors,
overrides, maintenance; and a simulated humid week through the room physics in well under a second."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from alerts.control.loop import ControlLoop, LoopInputs, LoopSettings, OverrideView
from alerts.notify.settings import TimeRange
from devices.simulators.climate import DoorSchedule
from devices.simulators.room_physics import RoomDevice, RoomPhysics

T0 = 1_719_792_000_000  # 2024-07-01T08:00:00+08:00
MIN = 60_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


def settings(**changes: object) -> LoopSettings:
    base: dict[str, object] = {"lowers": True, "start_at": 55.0, "stop_at": 50.0, "min_on_ms": 10 * MIN,
                               "min_off_ms": 5 * MIN, "max_run_ms": 6 * 60 * MIN, "rest_ms": 15 * MIN,
                               "tz": SHANGHAI}
    return LoopSettings(**{**base, **changes})  # type: ignore[arg-type]


def decide(loop: ControlLoop, at_min: int, value: float | None, on: bool, since_min: int, **extra: object):
    return loop.decide(LoopInputs(T0 + at_min * MIN, value, on, T0 + since_min * MIN, **extra))  # type: ignore[arg-type]


def test_dehumidifier_hysteresis_on_above_start_off_below_stop() -> None:
    loop = ControlLoop(settings(), T0 - 60 * MIN)
    assert decide(loop, 0, 55.0, False, -60) == (False, "hold")  # at the set-point is not above it
    assert decide(loop, 0, 55.1, False, -60).want is True
    assert decide(loop, 30, 52.0, True, 0) == (True, "hold")  # between the set-points: stays on
    assert decide(loop, 30, 50.0, True, 0) == (True, "hold")
    assert decide(loop, 30, 49.9, True, 0) == (False, "satisfied")
    assert decide(loop, 40, 52.0, False, 30) == (False, "hold")  # and stays off between them


def test_humidifier_mirrors_the_set_points() -> None:
    loop = ControlLoop(settings(lowers=False, start_at=47.5, stop_at=50.0), T0 - 60 * MIN)
    assert decide(loop, 0, 47.4, False, -60) == (True, "demand")
    assert decide(loop, 30, 49.0, True, 0) == (True, "hold")
    assert decide(loop, 30, 50.1, True, 0) == (False, "satisfied")


def test_minimum_on_and_off_times_hold_a_wish_back() -> None:
    loop = ControlLoop(settings(), T0 - 60 * MIN)
    assert decide(loop, 9, 49.0, True, 0) == (True, "min_on")  # switched on 9 min ago: stays on
    assert decide(loop, 10, 49.0, True, 0) == (False, "satisfied")
    assert decide(loop, 14, 58.0, False, 10) == (False, "min_off")
    assert decide(loop, 15, 58.0, False, 10) == (True, "demand")


def test_unknown_state_counts_as_off_since_the_loop_started() -> None:
    loop = ControlLoop(settings(), T0)
    assert loop.decide(LoopInputs(T0 + 2 * MIN, 58.0, None)) == (False, "min_off")
    assert loop.decide(LoopInputs(T0 + 5 * MIN, 58.0, None)) == (True, "demand")


def test_maximum_run_then_rest() -> None:
    loop = ControlLoop(settings(), T0)
    assert decide(loop, 359, 58.0, True, 0).want is True
    assert decide(loop, 360, 58.0, True, 0) == (False, "max_run")
    assert decide(loop, 370, 58.0, False, 361) == (False, "resting")  # 9 min into a 15 min rest
    assert decide(loop, 376, 58.0, False, 361) == (True, "demand")
    assert decide(loop, 380, 58.0, True, 376).want is True  # a new run: the rest is over


def test_allowed_hours() -> None:
    loop = ControlLoop(settings(allowed=(TimeRange.parse("07:00-19:00"),)), T0 - 60 * MIN)
    assert decide(loop, 0, 58.0, False, -60).want is True  # 08:00 local
    assert decide(loop, 11 * 60 + 30, 58.0, True, 11 * 60) == (False, "outside_hours")  # 19:30


def test_stale_sensors_go_to_the_safe_state_after_the_minimum_on_time() -> None:
    off_safe = ControlLoop(settings(), T0)
    assert decide(off_safe, 20, None, True, 0) == (False, "stale")
    assert decide(off_safe, 5, None, True, 0) == (True, "min_on")  # compressor protection still holds
    on_safe = ControlLoop(settings(safe_on=True), T0 - 60 * MIN)
    assert decide(on_safe, 0, None, False, -60) == (True, "stale")
    assert decide(on_safe, 360, None, True, 0) == (False, "max_run")  # never "keep running forever"


def test_override_beats_the_set_points_not_the_protection() -> None:
    loop = ControlLoop(settings(), T0)
    off = OverrideView(False, T0 + 120 * MIN, "zhang", "filter change")
    assert decide(loop, 20, 58.0, True, 0, override=off) == (False, "override")
    assert decide(loop, 5, 58.0, True, 0, override=off) == (True, "min_on")
    on = OverrideView(True, T0 + 120 * MIN, "li", "drying after a leak")
    assert decide(loop, 20, 40.0, False, 0, override=on) == (True, "override")


def test_maintenance_pauses_automatic_control() -> None:
    loop = ControlLoop(settings(), T0)
    assert decide(loop, 20, 58.0, False, 0, paused=True) == (False, "maintenance")
    assert decide(loop, 20, 40.0, True, 0, paused=True) == (True, "maintenance")
    assert decide(loop, 400, 58.0, True, 0, paused=True) == (False, "max_run")


def _week(control: bool) -> tuple[float, int, float, float]:
    on = {"dehum": False}
    room = RoomPhysics(T0, devices={"dehum": RoomDevice("dehumidifier", rate_g_h=900, heat_k_h=0.3)},
                       switches={"dehum": lambda: on["dehum"]}, door=DoorSchedule(seed=1))
    loop = ControlLoop(settings(), T0)
    since, inside, switches, shortest_on, shortest_off = T0, 0, 0, float("inf"), float("inf")
    minutes = 7 * 24 * 60
    for step in range(1, minutes + 1):
        now = T0 + step * MIN
        room.step_to(now)
        _, rh = room.reading()
        if control:
            decision = loop.decide(LoopInputs(now, rh, on["dehum"], since))
            if decision.want is not None and decision.want != on["dehum"]:
                held = (now - since) / 1000
                if switches:
                    shortest_on, shortest_off = ((min(shortest_on, held), shortest_off) if on["dehum"]
                                                 else (shortest_on, min(shortest_off, held)))
                on["dehum"], since, switches = decision.want, now, switches + 1
        inside += 45.0 <= room.rh <= 60.0
    return inside / minutes, switches, shortest_on, shortest_off


def test_a_simulated_humid_week_stays_in_band_with_the_loop_and_not_without() -> None:
    share, switches, shortest_on, shortest_off = _week(control=True)
    baseline, _, _, _ = _week(control=False)
    assert share >= 0.99
    assert baseline <= 0.5  # humid weather pushes an uncontrolled store out of 45–60 %RH
    assert switches > 4  # it did cycle...
    assert shortest_on >= 600 and shortest_off >= 300  # ...never faster than the equipment allows
