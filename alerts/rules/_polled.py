"""The shape shared by rules that poll a health source on the tick (notification channels, forward targets,
actuators): something outside the engine keeps the health and attaches itself to the rule; every few seconds
the rule looks and reports, per key, violated while the problem holds and fine once it is gone. Only changes
are news; a key that disappears from the source (removed by a reload) while violated is reported fine, since
nothing could clear it any more. Without a source (replay, tests of other rules) the rule reports nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, NamedTuple, TypeVar

from alerts.model import Condition
from alerts.rules.base import Rule

__all__ = ["LOOK_EVERY_MS", "Look", "PolledHealthRule"]

LOOK_EVERY_MS = 5_000

S = TypeVar("S")


class Look(NamedTuple):
    """What one look found about one key."""

    key: str
    room: str
    sensor: str
    state: bool
    detail: str = ""
    value: float | None = None
    news: object = None
    """More than the state whose change is reported again (the forward outbox going from backlog to full)."""


class _Reported(NamedTuple):
    state: bool
    news: object
    room: str
    sensor: str


class PolledHealthRule(Rule, Generic[S]):
    """A rule that reports changes of a polled health source (subclasses say what a look finds)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source: S | None = None
        self._next: int | None = None
        self._reported: dict[str, _Reported] = {}

    def attach(self, source: S | None) -> None:
        """Read health from ``source`` from now on (None: stop)."""
        self.source = source

    def looks(self, source: S) -> Iterable[Look]:
        """Every key the source knows now, with its state (a key whose state is unknown yet: left out)."""
        raise NotImplementedError

    def gone_detail(self, key: str) -> str:
        """The detail of the all-clear reported for a key the source no longer knows."""
        return "removed from config"

    def start(self, now_ms: int) -> None:
        self._next = now_ms

    def adopt(self, previous: Rule, now_ms: int) -> None:
        """A reload's new engine keeps the attached source and what was reported."""
        if type(previous) is type(self):
            assert isinstance(previous, PolledHealthRule)
            self.source = previous.source
            self._reported = dict(previous._reported)
        self._next = now_ms

    def next_due(self) -> int | None:
        return None if self.source is None else self._next

    def on_due(self, now_ms: int) -> list[Condition]:
        self._next = now_ms + LOOK_EVERY_MS
        if self.source is None:
            return []
        looks = list(self.looks(self.source))
        out = []
        present = {look.key for look in looks}
        for key in [k for k in self._reported if k not in present]:
            gone = self._reported.pop(key)
            if gone.state and not self.quiet(key, False):
                out.append(self._condition(Look(key, gone.room, gone.sensor, False, self.gone_detail(key)), now_ms))
        for look in looks:
            seen = self._reported.get(look.key)
            if seen is not None and (seen.state, seen.news) == (look.state, look.news):
                continue
            self._reported[look.key] = _Reported(look.state, look.news, look.room, look.sensor)
            if not self.quiet(look.key, look.state):
                out.append(self._condition(look, now_ms))
        return out

    def _condition(self, look: Look, now_ms: int) -> Condition:
        return Condition(rule=self.name, key=look.key, room=look.room, sensor=look.sensor, quantity=None,
                         state=look.state, ts_ms=now_ms, severity=self.severity, value=look.value,
                         detail=look.detail)
