"""Notification channel down: a channel that keeps failing raises an alert of its own.

The notifier (``alerts.notify``) keeps each channel's health and attaches itself to this rule
(:meth:`ChannelRule.attach`); the rule looks every few seconds and reports, per channel, violated while the
channel is down and clearly fine once it works again. Without a notifier (replay, tests of other rules) it
reports nothing. Only changes are reported (a channel going down, coming back); the first look after a
start reports every channel's state. A channel removed from the configuration (a reload) while it was down
is reported fine: nobody could bring it back up to clear its alert. The alert has no room (``room = ""``,
the channel's name as its sensor), so routes that take every room send it; the notifier never sends it
through the channel it is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from alerts.model import Condition
from alerts.rules.base import Rule

__all__ = ["ChannelRule", "HealthSource"]

LOOK_EVERY_MS = 5_000


class _Health(Protocol):
    channel: str

    @property
    def down(self) -> bool: ...

    @property
    def detail(self) -> str: ...

    state: str


class HealthSource(Protocol):
    """What the rule reads: every channel's health (``alerts.notify.health.HealthBoard``)."""

    def channel_health(self) -> Sequence[_Health]: ...


class ChannelRule(Rule):
    """One alert per notification channel that is down."""

    name = "channel"
    default_severity = "major"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source: HealthSource | None = None
        self._next: int | None = None
        self._reported: dict[str, bool] = {}  # what was last reported per channel: only changes are news

    def attach(self, source: HealthSource | None) -> None:
        """Read channel health from ``source`` from now on (None: stop)."""
        self.source = source

    def start(self, now_ms: int) -> None:
        self._next = now_ms

    def next_due(self) -> int | None:
        if self.source is None:
            return None
        return self._next

    def on_due(self, now_ms: int) -> list[Condition]:
        self._next = now_ms + LOOK_EVERY_MS
        if self.source is None:
            return []
        out = []
        healths = list(self.source.channel_health())
        present = {health.channel for health in healths}
        for name in [n for n in self._reported if n not in present]:
            if self._reported.pop(name) and not self.quiet(name, False):
                out.append(Condition(rule=self.name, key=name, room="", sensor=name, quantity=None, state=False,
                                     ts_ms=now_ms, severity=self.severity, detail="channel removed from config"))
        for health in healths:
            if health.state == "unknown":
                continue
            state = health.down
            if self._reported.get(health.channel) == state:
                continue
            self._reported[health.channel] = state
            if self.quiet(health.channel, state):
                continue
            out.append(Condition(rule=self.name, key=health.channel, room="", sensor=health.channel, quantity=None,
                                 state=state, ts_ms=now_ms, severity=self.severity,
                                 detail=health.detail if health.down else ""))
        return out
