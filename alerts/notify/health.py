"""Each channel's health: consecutive failures, last success and failure, the channel's own view of its link.

A channel is ``down`` after ``down_after_failures`` sends in a row that failed *or were rejected* (a webhook
answering 404 for every message, a mail server refusing the sender, ``+CMS ERROR: 304`` for every PDU: each
rejection is final for its message, but a channel that rejects everything reaches nobody), whichever
recipients they were for; or when its own check (the modem: SIM ready and registered) has said "not working"
for ``down_after_s``; or at once when a secret it needs is missing (:meth:`HealthBoard.set_broken`).
``failing`` between the first failure and down; ``ok`` after a success or a good check; ``unknown`` before
either. An accepted send ends the run of failures. A provider's rate limit, and a message that could not
even be built (``SendResult.channel_fault`` False), say nothing about the channel. The state is kept in
memory for the alert rule ``channel`` (:meth:`HealthBoard.channel_health`) and persisted for ``archmon
status`` in another process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["ChannelHealth", "HealthBoard"]


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """One channel's health (what the ``channel`` rule and ``archmon status`` read)."""

    channel: str
    type: str
    state: str = "unknown"
    failures: int = 0
    last_success_ms: int | None = None
    last_failure_ms: int | None = None
    last_error: str | None = None
    unhealthy_since_ms: int | None = None
    details: tuple[tuple[str, Any], ...] = ()
    broken: str | None = None  # why the channel cannot work at all (a missing secret)

    @property
    def down(self) -> bool:
        """Whether the channel counts as down (raises the "notification channel down" alert)."""
        return self.state == "down"

    @property
    def detail(self) -> str:
        """Why it is down, for the alert's detail: one line (a provider's multi-line error page collapsed,
        so it can go into an e-mail subject), bounded."""
        return " ".join((self.broken or self.last_error or "").split())[:200]


class HealthBoard:
    """Health of every channel, updated by the channel workers.

    Args:
        channels: channel name → type.
        down_after_failures: failures in a row that make a channel down.
        down_after_s: how long a channel's own check may say "not working" before it is down.
    """

    def __init__(self, channels: dict[str, str], *, down_after_failures: int, down_after_s: float) -> None:
        self._lock = threading.Lock()
        self._health = {name: ChannelHealth(name, kind) for name, kind in channels.items()}
        self.down_after_failures = down_after_failures
        self.down_after_ms = int(down_after_s * 1000)

    def set_channels(self, channels: dict[str, str]) -> None:
        """Follow a configuration reload: channels kept keep their health, new ones start ``unknown``, removed
        ones are dropped (a channel whose type changed starts again)."""
        with self._lock:
            self._health = {name: (self._health[name] if name in self._health and self._health[name].type == kind
                                   else ChannelHealth(name, kind)) for name, kind in channels.items()}

    def set_broken(self, channel: str, why: str | None, now_ms: int) -> ChannelHealth:
        """Mark a channel that cannot work at all (``why``: a missing secret) down at once; None: it can again."""
        with self._lock:
            h = replace(self._health[channel], broken=why)
            if why:
                h = replace(h, last_failure_ms=now_ms, last_error=why)
            h = replace(h, state=self._state(h, now_ms))
            self._health[channel] = h
            return h

    def get(self, channel: str) -> ChannelHealth:
        """The health of one channel (a channel a reload removed: a blank one)."""
        with self._lock:
            return self._health.get(channel) or ChannelHealth(channel, "")

    def channel_health(self) -> list[ChannelHealth]:
        """Every channel's health (for the ``channel`` rule)."""
        with self._lock:
            return list(self._health.values())

    def record_send(self, channel: str, outcome: str, answer: str, now_ms: int, *,
                    channel_fault: bool = True) -> ChannelHealth:
        """Take the outcome of one send (``channel_fault`` False: a failure of that message alone)."""
        with self._lock:
            if channel not in self._health:  # removed by a reload while this send was under way
                return ChannelHealth(channel, "")
            h = self._health[channel]
            if outcome == "accepted":
                h = replace(h, failures=0, last_success_ms=now_ms, unhealthy_since_ms=None, broken=None)
            elif outcome in ("failed", "rejected") and channel_fault:
                h = replace(h, failures=h.failures + 1, last_failure_ms=now_ms, last_error=answer)
            h = replace(h, state=self._state(h, now_ms))
            self._health[channel] = h
            return h

    def record_check(self, channel: str, healthy: bool | None, error: str | None, details: dict[str, Any],
                     now_ms: int) -> ChannelHealth:
        """Take the channel's own view of its link (None: it cannot tell)."""
        with self._lock:
            if channel not in self._health:
                return ChannelHealth(channel, "")
            h = replace(self._health[channel], details=tuple(sorted(details.items())))
            if healthy is False:
                since = now_ms if h.unhealthy_since_ms is None else h.unhealthy_since_ms
                h = replace(h, unhealthy_since_ms=since, last_error=error or h.last_error)
            elif healthy is True:
                h = replace(h, unhealthy_since_ms=None)
            h = replace(h, state=self._state(h, now_ms))
            self._health[channel] = h
            return h

    def _state(self, h: ChannelHealth, now_ms: int) -> str:
        if h.broken or h.failures >= self.down_after_failures:
            return "down"
        if h.unhealthy_since_ms is not None and now_ms - h.unhealthy_since_ms >= self.down_after_ms:
            return "down"
        if h.failures or h.unhealthy_since_ms is not None:
            return "failing"
        if h.last_success_ms is not None or h.details:
            return "ok"
        return "unknown"
