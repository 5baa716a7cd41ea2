"""Forwarding backlog: readings pile up in the outbox for InfluxDB (the remote is down, slow or refusing).

The service wiring (``archmon.app.forwarding``) attaches the forwarder's health to this rule
(:meth:`ForwardingRule.attach`); every few seconds the rule reports, per target, violated while its backlog
is at or over a warning level (queued rows or bytes, or the age of the oldest queued reading: long before
the outbox's bound) and fine once it is under them again (the polled-health shape of
:mod:`alerts.rules._polled`). Detail ``full`` when readings were stored at the bound (kept locally, queued
again once the outbox drains), ``backlog`` before; going from one to the other is reported too. Points the
remote refused for good in the last hour (``refused``: kept in ``forward_quarantine``, ``archmon forward
requeue`` sends them again) raise it too, detail ``refused`` when there is no backlog. Without forwarding it
reports nothing. The alert has no room; its sensor is the target's name (``influxdb``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from alerts.rules._polled import Look, PolledHealthRule

__all__ = ["BacklogSource", "ForwardingRule"]


class _Health(Protocol):
    target: str
    rows: int
    backlog: bool
    full: bool
    detail: str
    refused: int


class BacklogSource(Protocol):
    """What the rule reads: every forward target's health (``archmon.app.forwarding.Forwarding``)."""

    def forward_health(self) -> Sequence[_Health]: ...


class ForwardingRule(PolledHealthRule[BacklogSource]):
    """One alert per forward target whose outbox backlog is over its warning level."""

    name = "forwarding"
    default_severity = "warning"

    def looks(self, source: BacklogSource) -> Iterable[Look]:
        for health in source.forward_health():
            refused = health.refused > 0
            detail = ("full" if health.full else "backlog") if health.backlog else "refused" if refused else ""
            yield Look(health.target, "", health.target, health.backlog or refused, detail, float(health.rows),
                       news=(health.full, refused))
