"""Notification channel down: a channel that keeps failing raises an alert of its own.

The notifier (``alerts.notify``) keeps each channel's health and attaches itself to this rule
(:meth:`ChannelRule.attach`); the rule looks every few seconds and reports, per channel, violated while the
channel is down and clearly fine once it works again (the polled-health shape of :mod:`alerts.rules._polled`).
Only changes are reported (a channel going down, coming back); the first look after a start reports every
channel's state. A channel removed from the configuration (a reload) while it was down is reported fine:
nobody could bring it back up to clear its alert. The alert has no room (``room = ""``, the channel's name
as its sensor), so routes that take every room send it; the notifier never sends it through the channel it
is about.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from alerts.rules._polled import Look, PolledHealthRule

__all__ = ["ChannelRule", "HealthSource"]


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


class ChannelRule(PolledHealthRule[HealthSource]):
    """One alert per notification channel that is down."""

    name = "channel"
    default_severity = "major"

    def looks(self, source: HealthSource) -> Iterable[Look]:
        for health in source.channel_health():
            if health.state != "unknown":
                yield Look(health.channel, "", health.channel, health.down, health.detail if health.down else "")

    def gone_detail(self, key: str) -> str:
        return "channel removed from config"
