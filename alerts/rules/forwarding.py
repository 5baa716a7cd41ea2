"""Forwarding backlog: readings pile up in the outbox for InfluxDB (the remote is down, slow or refusing).

The service wiring (``archmon.app.forwarding``) attaches the forwarder's health to this rule
(:meth:`ForwardingRule.attach`); every few seconds the rule reports, per target, violated while its backlog
is at or over a warning level (queued rows or bytes, or the age of the oldest queued reading: long before
the outbox's bound) and fine once it is under them again. Detail ``full`` when readings were stored at the
bound (kept locally, queued again once the outbox drains), ``backlog`` before. Without forwarding it reports
nothing. Only changes are reported. The alert has no room; its sensor is the target's name (``influxdb``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from alerts.model import Condition
from alerts.rules.base import Rule

__all__ = ["BacklogSource", "ForwardingRule"]

LOOK_EVERY_MS = 5_000


class _Health(Protocol):
    target: str
    rows: int
    backlog: bool
    full: bool
    detail: str


class BacklogSource(Protocol):
    """What the rule reads: every forward target's health (``archmon.app.forwarding.Forwarding``)."""

    def forward_health(self) -> Sequence[_Health]: ...


class ForwardingRule(Rule):
    """One alert per forward target whose outbox backlog is over its warning level."""

    name = "forwarding"
    default_severity = "warning"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source: BacklogSource | None = None
        self._next: int | None = None
        self._reported: dict[str, tuple[bool, bool]] = {}  # per target: (backlog, full) last reported

    def attach(self, source: BacklogSource | None) -> None:
        """Read the targets' health from ``source`` from now on (None: stop)."""
        self.source = source

    def start(self, now_ms: int) -> None:
        self._next = now_ms

    def next_due(self) -> int | None:
        return None if self.source is None else self._next

    def on_due(self, now_ms: int) -> list[Condition]:
        self._next = now_ms + LOOK_EVERY_MS
        if self.source is None:
            return []
        out = []
        for health in self.source.forward_health():
            state = (health.backlog, health.full)
            if self._reported.get(health.target) == state:
                continue
            self._reported[health.target] = state
            if self.quiet(health.target, health.backlog):
                continue
            out.append(Condition(rule=self.name, key=health.target, room="", sensor=health.target, quantity=None,
                                 state=health.backlog, ts_ms=now_ms, severity=self.severity,
                                 value=float(health.rows),
                                 detail=("full" if health.full else "backlog") if health.backlog else ""))
        return out
