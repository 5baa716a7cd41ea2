"""The ``actuator`` rule: a device that is not responding (or runs without effect) raises an alert in its
room; heard again, it clears; a reload's new rule keeps the source; without a source nothing happens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alerts.engine import AlertEngine
from alerts.rules.actuator import ActuatorRule
from alerts.store import AlertStore
from tests.alerts.helpers import SHANGHAI_NOON, site_config


@dataclass
class Health:
    actuator: str
    room: str
    problem: str
    state: str
    detail: str = ""

    @property
    def down(self) -> bool:
        return self.state == "down"


@dataclass
class Board:
    healths: list[Health]

    def actuator_health(self) -> list[Health]:
        return list(self.healths)


def test_not_responding_fires_in_the_room_and_clears_when_heard_again(tmp_path: Path) -> None:
    config = site_config(tmp_path, alerts={"rules": {"stale": {"enabled": False}}})
    room = config.rooms[0].id
    store = AlertStore(tmp_path / "a.db")
    engine = AlertEngine(config, store)
    try:
        [rule] = [r for r in engine.rules if isinstance(r, ActuatorRule)]
        engine.advance(SHANGHAI_NOON)
        assert rule.next_due() is None  # no controller: the rule never looks
        board = Board([Health("dehum1", room, "not_responding", "unknown"), Health("dehum1", room, "no_effect", "ok")])
        rule.attach(board)
        assert engine.advance(SHANGHAI_NOON + 5_000) == []  # unknown and fine: nothing to say
        board.healths[0] = Health("dehum1", room, "not_responding", "down", "no report of ON after 3 attempt(s)")
        out = engine.advance(SHANGHAI_NOON + 10_000)
        assert [(t.rule, t.sensor, t.room, t.state, t.severity) for t in out] == [
            ("actuator", "dehum1", room, "active", "major")]
        assert "调控设备无响应" in out[0].title or "actuator not responding" in out[0].title
        assert engine.advance(SHANGHAI_NOON + 60_000) == []  # still down: one alert
        renewed = AlertEngine(config, store, series=engine.series)  # a reload
        renewed.take_over(engine)
        [again] = [r for r in renewed.rules if isinstance(r, ActuatorRule)]
        assert again.source is board
        board.healths[0] = Health("dehum1", room, "not_responding", "ok")
        out = renewed.advance(SHANGHAI_NOON + 70_000)
        assert [(t.sensor, t.state) for t in out][:1] == [("dehum1", "cleared")]
        board.healths.clear()  # the device left the configuration: nothing open stays behind
        assert renewed.advance(SHANGHAI_NOON + 80_000) == []
    finally:
        store.close()
