"""One simulated humid week in a paper store, the loop closed over a real Mosquitto broker and a real
pseudo-terminal Modbus relay: RH stays inside 45–60 % for at least 99 % of the time with control, and a
large share of the time outside without, while no device switches faster than its minimum on/off times.
The same figures are printed by ``bench/bench_control.py``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerts.audit import verify_audit
from alerts.control import device_summaries, load_plans
from devices.simulators.pty_pair import PtyPair
from tests.alerts.control.closed_loop import MIN_OFF_S, MIN_ON_S, T0, ClosedLoopRoom
from tests.fixtures.mosquitto import MosquittoBroker

pytestmark = [pytest.mark.mosquitto, pytest.mark.serial, pytest.mark.slow]

WEEK_MIN = 7 * 24 * 60


def test_a_humid_week_with_and_without_control(mosquitto: MosquittoBroker, pty_pair: PtyPair,
                                               tmp_path: Path) -> None:
    runs = {}
    for control in (True, False):
        folder = tmp_path / ("control" if control else "baseline")
        folder.mkdir()
        room = ClosedLoopRoom(folder, host=mosquitto.host, port=mosquitto.port, relay_port=pty_pair.a,
                              module_port=pty_pair.b, control=control, judge=False)
        try:
            room.start()
            runs[control] = room.run(WEEK_MIN)
            if control:
                assert room.unanswered_steps == 0
                status = {s.actuator: s for s in room.controller.status()}
                assert all(s.responding for s in status.values())
                records = room.records
                for name, plug_history in (("dehum1", room.zigbee.history), ("ac1", room.tasmota.history),
                                           ("dehum2", room.relay.history[0])):
                    logged = [row for row in records.switches(name, T0, room.now + 1) if row.how == "command"]
                    assert [(r.ts_ms, r.on) for r in logged] == [(s.ts_ms, s.on) for s in plug_history], name
                    on_s = records.run_ms(name, T0, room.now) / 1000
                    assert abs(on_s - room.room.run_s[name]) <= 60 * (len(plug_history) + 1), name
                summaries = {s.actuator: s for s in device_summaries(records, load_plans(room.config), T0,
                                                                     room.now + 1)}
                for name, plug_history in room.histories().items():
                    summary = summaries[name]
                    assert summary.switches == summary.commands == len(plug_history) and summary.failures == 0
                    assert abs(summary.run_hours * 3600 - room.room.run_s[name]) <= 60 * (len(plug_history) + 1)
        finally:
            room.stop()
    with_loop, without = runs[True], runs[False]
    print(f"\nRH inside 45–60 %: {with_loop.rh_in_band:.2%} with control, {without.rh_in_band:.2%} without; "
          f"switches {with_loop.switches}; run hours {with_loop.run_hours}")
    assert with_loop.rh_in_band >= 0.99
    assert without.rh_in_band <= 0.5
    assert with_loop.t_in_band >= 0.99  # the air conditioner kept the temperature in 14–24 ℃ too
    assert all(count >= 4 for name, count in with_loop.switches.items() if name != "dehum2")
    for name, count in with_loop.switches.items():
        assert count <= 7 * 24 * 3600 / (MIN_ON_S[name] + MIN_OFF_S[name])  # never cycling at the limit
        assert with_loop.shortest_on_s[name] >= MIN_ON_S[name], name
        assert with_loop.shortest_off_s[name] >= MIN_OFF_S[name], name
    with sqlite3.connect(tmp_path / "control" / "archmon.db") as conn:
        verdict = verify_audit(conn)
        assert verdict.ok, verdict
        events = dict(conn.execute("SELECT json_extract(payload, '$.event'), COUNT(*) FROM audit_log "
                                   "WHERE kind = 'control' GROUP BY 1").fetchall())
    commands = sum(with_loop.switches.values())
    assert events["command"] == events["confirmed"] == commands  # every switch asked for and confirmed
    assert events.get("failed", 0) == 0 and events.get("retry", 0) == 0


def test_minimum_times_bind_when_the_set_points_are_tight(mosquitto: MosquittoBroker, pty_pair: PtyPair,
                                                        tmp_path: Path) -> None:
    """Half a percent of hysteresis against ±0.15 % sensor noise would make the plug chatter; the minimum
    on and off times are what stops it (a shortest spell right at the minimum shows they bind)."""
    tight = {"dehum1": {"start_at": 53.0, "stop_at": 52.5}, "dehum2": {"enabled": False}}
    room = ClosedLoopRoom(tmp_path, host=mosquitto.host, port=mosquitto.port, relay_port=pty_pair.a,
                          module_port=pty_pair.b, overrides=tight, judge=False)
    try:
        room.start()
        day = room.run(24 * 60)
    finally:
        room.stop()
    print(f"\ntight set-points: {day.switches}, shortest on {day.shortest_on_s}, off {day.shortest_off_s}")
    assert day.switches["dehum1"] >= 20
    assert day.shortest_on_s["dehum1"] >= MIN_ON_S["dehum1"] and day.shortest_off_s["dehum1"] >= MIN_OFF_S["dehum1"]
    assert min(day.shortest_on_s["dehum1"] - MIN_ON_S["dehum1"],
               day.shortest_off_s["dehum1"] - MIN_OFF_S["dehum1"]) <= 60  # held back right to the limit
