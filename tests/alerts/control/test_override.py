"""People in charge: ``archmon control off dehum1 --for 2h`` is honoured against the loop and expires back to
automatic control; ``auto`` ends an override early; maintenance windows pause control; all of it in the
audit chain (``archmon audit verify`` ok). The closed loop runs from the real present (the CLI stamps
overrides with the real clock) in simulated time."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from archmon.cli import main
from archmon.timeutil import now_ms
from devices.simulators.pty_pair import PtyPair
from tests.alerts.control.closed_loop import T0, ClosedLoopRoom
from tests.fixtures.mosquitto import MosquittoBroker

pytestmark = [pytest.mark.mosquitto, pytest.mark.serial]


def _room(mosquitto: MosquittoBroker, pty_pair: PtyPair, folder: Path, **options: object) -> ClosedLoopRoom:
    options.setdefault("overrides", {"dehum2": {"enabled": False}})  # one dehumidifier: the override shows
    options.setdefault("rh", 58.5)
    options.setdefault("start_ms", now_ms() // 60_000 * 60_000)
    return ClosedLoopRoom(folder, host=mosquitto.host, port=mosquitto.port, relay_port=pty_pair.a,
                          module_port=pty_pair.b, **options)  # type: ignore[arg-type]


@pytest.fixture
def room(mosquitto: MosquittoBroker, pty_pair: PtyPair, tmp_path: Path) -> Iterator[ClosedLoopRoom]:
    harness = _room(mosquitto, pty_pair, tmp_path).start()
    yield harness
    harness.stop()


def cli(room: ClosedLoopRoom, *args: str) -> int:
    return main(["--config", str(room.config.path), *args])


def events(room: ClosedLoopRoom, actuator: str) -> list[tuple[str, str, dict[str, object]]]:
    with sqlite3.connect(room.config.storage.sqlite_path) as conn:
        rows = conn.execute("SELECT actor, payload FROM audit_log WHERE subject = ? ORDER BY seq",
                            (f"actuator:{actuator}",)).fetchall()
    return [(actor, json.loads(payload)["event"], json.loads(payload)) for actor, payload in rows]


def test_off_for_two_hours_is_honoured_then_expires(room: ClosedLoopRoom, capsys: pytest.CaptureFixture[str]) -> None:
    room.until(lambda: room.zigbee.on, limit_min=30)
    for _ in range(10):  # the minimum on time
        room.step()
    assert cli(room, "control", "off", "dehum1", "--for", "2h", "--by", "张三", "--reason", "更换滤网") == 0
    assert "dehum1 OFF until" in capsys.readouterr().out
    room.step()
    assert not room.zigbee.on  # honoured at the next tick
    [override] = room.records.overrides("dehum1")
    assert override.until_ms - override.start_ms == 2 * 3600_000
    for _ in range(90):
        room.step()
        assert not room.zigbee.on  # against the loop, though the room is humid:
    assert room.room.rh > 55.0
    actor, _, payload = [e for e in events(room, "dehum1") if e[1] == "command"][-1]
    assert (actor, payload["reason"], payload["state"]) == ("张三", "override", "off")
    room.until(lambda: room.zigbee.on, limit_min=180)  # expires: back to the loop, which wants it on
    assert override.until_ms <= room.zigbee.history[-1].ts_ms <= override.until_ms + 120_000
    kinds = [e[1] for e in events(room, "dehum1")]
    assert kinds.index("override") < kinds.index("override_expired") < len(kinds) - 1
    assert cli(room, "control", "status", "--format", "json") == 0
    [row] = [r for r in json.loads(capsys.readouterr().out) if r["device"] == "dehum1"]
    assert row["override"] is None and row["state"] == "on"
    assert cli(room, "audit", "verify") == 0
    assert capsys.readouterr().out.startswith("ok (")


def test_auto_ends_an_override_and_bad_requests_are_refused(room: ClosedLoopRoom,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    room.until(lambda: room.zigbee.on, limit_min=30)
    for _ in range(10):
        room.step()
    assert cli(room, "control", "off", "dehum1", "--for", "3h", "--by", "li", "--reason", "test") == 0
    room.step()
    assert not room.zigbee.on
    for _ in range(6):  # past the minimum off time
        room.step()
    assert cli(room, "control", "auto", "dehum1", "--by", "li") == 0
    assert "back to automatic control" in capsys.readouterr().out
    room.step()
    assert room.zigbee.on
    assert [e[0] for e in events(room, "dehum1") if e[1] == "override_end"] == ["li"]
    assert cli(room, "control", "off", "nope", "--by", "li", "--reason", "x") == 1
    assert "unknown device 'nope'" in capsys.readouterr().err
    assert cli(room, "control", "on", "dehum1", "--for", "9d", "--by", "li", "--reason", "x") == 1
    assert cli(room, "control", "on", "dehum1", "--for", "soon", "--by", "li", "--reason", "x") == 2
    assert cli(room, "control", "on", "dehum1", "--by", "li", "--reason", "  ") == 1


def test_a_maintenance_window_pauses_control(mosquitto: MosquittoBroker, pty_pair: PtyPair, tmp_path: Path) -> None:
    evening = T0 + 12 * 3600_000  # 20:00: nobody opens the door (no CLI here: simulated time of its own)
    room = _room(mosquitto, pty_pair, tmp_path, rh=55.8, start_ms=evening,
                 overrides={"dehum2": {"enabled": False}, "dehum1": {"max_run_s": 86_400}}).start()
    try:
        room.until(lambda: room.zigbee.on, limit_min=30)
        room.until(lambda: room.room.rh < 50.6, limit_min=600)
        assert room.zigbee.on
        end = room.now + 8 * 3600_000
        room.alerts.add_maintenance("A1", room.now, end, "servicing the sensors", "wang", room.now)
        room.until(lambda: room.room.rh < 49.0, limit_min=300)
        assert room.zigbee.on  # not switched off below 50 %: the loop is paused while the window lasts
        assert room.controller.status()[0].reason == "maintenance"
        room.alerts.end_maintenance(1, "wang", "done", room.now)
        room.step()
        assert not room.zigbee.on  # the window ended: the loop acts again
    finally:
        room.stop()
