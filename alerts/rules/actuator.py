"""Actuator not responding / no effect: a switched device that does not do what it is told raises an alert.

Climate control (``alerts.control``) keeps each device's health and attaches itself to this rule
(:meth:`ActuatorRule.attach`), the way the notifier attaches to the channel rule: every few seconds the
rule reads the health and reports, per device and problem, violated while it holds and clearly fine once
it is gone. Problems: ``not_responding`` (a command or state query went unconfirmed through every repeat,
or the device said it is offline) and ``no_effect`` (it runs and the room does not respond). Without a
source (replay, tests of other rules) it reports nothing. Only changes are reported; a device removed from
the configuration while its alert was open is reported fine. The alert belongs to the device's room (its
routes and maintenance windows apply), with the device's id as the sensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from alerts.model import Condition
from alerts.rules.base import Rule

__all__ = ["ActuatorHealthSource", "ActuatorRule"]

LOOK_EVERY_MS = 5_000


class _Health(Protocol):
    actuator: str
    room: str
    problem: str
    state: str
    detail: str

    @property
    def down(self) -> bool: ...


class ActuatorHealthSource(Protocol):
    """What the rule reads (``alerts.control.ClimateController``)."""

    def actuator_health(self) -> Sequence[_Health]: ...


class ActuatorRule(Rule):
    """One alert per device and problem while it holds."""

    name = "actuator"
    default_severity = "major"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source: ActuatorHealthSource | None = None
        self._next: int | None = None
        self._reported: dict[str, tuple[bool, str, str]] = {}  # key -> (state, room, actuator) last reported

    def attach(self, source: ActuatorHealthSource | None) -> None:
        """Read device health from ``source`` from now on (None: stop)."""
        self.source = source

    def start(self, now_ms: int) -> None:
        self._next = now_ms

    def adopt(self, previous: Rule, now_ms: int) -> None:
        """A reload's new engine keeps the controller attached and what was reported."""
        if isinstance(previous, ActuatorRule):
            self.source = previous.source
            self._reported = dict(previous._reported)
        self._next = now_ms

    def next_due(self) -> int | None:
        return None if self.source is None else self._next

    def on_due(self, now_ms: int) -> list[Condition]:
        self._next = now_ms + LOOK_EVERY_MS
        if self.source is None:
            return []
        out = []
        healths = list(self.source.actuator_health())
        present = {f"{h.actuator}/{h.problem}" for h in healths}
        for key in [k for k in self._reported if k not in present]:
            state, room, actuator = self._reported.pop(key)
            if state and not self.quiet(key, False):
                out.append(Condition(rule=self.name, key=key, room=room, sensor=actuator, quantity=None, state=False,
                                     ts_ms=now_ms, severity=self.severity, detail=key.split("/", 1)[1]))
        for health in healths:
            if health.state == "unknown":
                continue
            key = f"{health.actuator}/{health.problem}"
            state = health.down
            if key in self._reported and self._reported[key][0] == state:
                continue
            self._reported[key] = (state, health.room, health.actuator)
            if self.quiet(key, state):
                continue
            out.append(Condition(rule=self.name, key=key, room=health.room, sensor=health.actuator, quantity=None,
                                 state=state, ts_ms=now_ms, severity=self.severity, detail=health.problem))
        return out
