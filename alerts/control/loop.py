"""One device's control loop: pure logic from the room's value, the device's state and the clock to a wish.

The loop never reads a clock or a device: :meth:`ControlLoop.decide` takes everything as
:class:`LoopInputs` (the time, the followed value, the confirmed device state and since when, an active
manual override, whether the room is under maintenance) and returns a :class:`Decision`: the state the
device should be in and why. A simulated week runs through it in milliseconds.

The order of precedence, first match wins:

1. **Equipment protection**, always, manual overrides included: a device on for ``max_run_s`` goes off
   and rests ``rest_s``; no switch off before ``min_on_s`` nor on before ``min_off_s`` since the last switch
   (compressor protection: a wish against it waits, the decision says ``min_on``/``min_off``).
2. **A person's override** (``archmon control on|off``) until it expires.
3. **Maintenance**: the room's maintenance window pauses automatic control (the device stays as it is).
4. **Stale sensors**: fewer fresh followed sensors than ``min_sensors``: the configured safe state.
5. **Allowed hours**: outside them, off.
6. **Hysteresis** on the set-points: for a device that lowers the value, on above ``start_at``, off below
   ``stop_at``, as it is in between (``hold``); mirrored for one that raises it.

A device whose state is not known yet (no read-back) is treated as off since the loop started, so the
minimum off time also protects a compressor that archmon cannot see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from alerts.notify.settings import TimeRange
from alerts.rules.base import at_resolution

_UTC = ZoneInfo("UTC")

__all__ = ["REASONS", "ControlLoop", "Decision", "LoopInputs", "LoopSettings", "OverrideView", "Reason"]

Reason = Literal["demand", "satisfied", "hold", "min_on", "min_off", "max_run", "resting", "outside_hours", "stale",
                 "override", "maintenance"]
REASONS: dict[Reason, tuple[str, str]] = {
    "demand": ("超出启动设定值", "past the start set-point"),
    "satisfied": ("已达到停止设定值", "past the stop set-point"),
    "hold": ("在设定值之间，保持", "between the set-points: holding"),
    "min_on": ("最短运行时间未到", "minimum on time not reached"),
    "min_off": ("最短停机时间未到", "minimum off time not reached"),
    "max_run": ("已达最长连续运行时间", "maximum continuous run reached"),
    "resting": ("连续运行后休息", "resting after a maximum run"),
    "outside_hours": ("不在允许运行时段", "outside the allowed hours"),
    "stale": ("传感器数据过期，转入安全状态", "sensors stale: safe state"),
    "override": ("人工控制", "manual override"),
    "maintenance": ("维护期间暂停自动控制", "paused for maintenance"),
}
"""Every reason a decision gives, in Chinese and English (audit log, dashboard, CLI)."""


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """A loop's configuration, resolved (set-points inside the band, times in ms).

    Attributes:
        lowers: running the device lowers the value (dehumidifier, air conditioner cooling).
        start_at, stop_at: the set-points (see the module docstring).
        min_on_ms, min_off_ms, max_run_ms, rest_ms: the equipment protection.
        allowed: ranges of local time when it may run (empty: always).
        safe_on: the safe state for stale sensors is on.
        tz: the site's zone (allowed hours).
    """

    lowers: bool
    start_at: float
    stop_at: float
    min_on_ms: int
    min_off_ms: int
    max_run_ms: int
    rest_ms: int
    allowed: tuple[TimeRange, ...] = ()
    safe_on: bool = False
    tz: ZoneInfo = _UTC


@dataclass(frozen=True, slots=True)
class OverrideView:
    """An active manual override: the state a person asked for, until when, by whom and why."""

    on: bool
    until_ms: int
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class LoopInputs:
    """What the loop decides from.

    Attributes:
        now_ms: the time.
        value: the followed value (mean or worst of the fresh sensors); None when too few are fresh.
        on: the device's confirmed state (None: not known yet).
        since_ms: when it took that state (None: unknown; taken as the loop's start).
        override: an active override, or None.
        paused: the room is under maintenance.
    """

    now_ms: int
    value: float | None
    on: bool | None
    since_ms: int | None = None
    override: OverrideView | None = None
    paused: bool = False


class Decision(NamedTuple):
    """The state the device should be in (None: leave it as it is) and why."""

    want: bool | None
    reason: Reason


class ControlLoop:
    """The decisions of one device's loop (its only memory: when it started, and a rest after a max run).

    Args:
        settings: the resolved settings.
        started_ms: when the loop started (the "since" of a state not known).
    """

    def __init__(self, settings: LoopSettings, started_ms: int) -> None:
        self.settings = settings
        self.started_ms = started_ms
        self._resting = False  # the last run ended at max_run_s: the next start waits rest_ms

    @property
    def resting(self) -> bool:
        """Whether the last run ended at ``max_run_s`` (the next start waits ``rest_ms``)."""
        return self._resting

    @resting.setter
    def resting(self, value: bool) -> None:
        self._resting = value

    def decide(self, inputs: LoopInputs) -> Decision:
        """The state the device should be in now (see the module docstring for the precedence)."""
        s = self.settings
        now = inputs.now_ms
        on = bool(inputs.on)
        since = inputs.since_ms if inputs.since_ms is not None else self.started_ms
        held = now - since
        if on:
            self._resting = False
            if held >= s.max_run_ms:
                self._resting = True
                return Decision(False, "max_run")
        target, reason = self._target(inputs, on)
        if target is None:
            return Decision(None if inputs.on is None else on, reason)
        if target == on:
            return Decision(target, reason)
        if target:
            if self._resting and held < s.rest_ms:
                return Decision(False, "resting")
            if held < s.min_off_ms:
                return Decision(False, "min_off")
        elif held < s.min_on_ms:
            return Decision(True, "min_on")
        return Decision(target, reason)

    def _target(self, inputs: LoopInputs, on: bool) -> tuple[bool | None, Reason]:
        s = self.settings
        if inputs.override is not None:
            return inputs.override.on, "override"
        if inputs.paused:
            return None, "maintenance"
        if inputs.value is None:
            return s.safe_on, "stale"
        if s.allowed and not _inside(s.allowed, inputs.now_ms, s.tz):
            return False, "outside_hours"
        value = at_resolution(inputs.value)
        if s.lowers:
            if value > at_resolution(s.start_at):
                return True, "demand"
            if value < at_resolution(s.stop_at):
                return False, "satisfied"
        else:
            if value < at_resolution(s.start_at):
                return True, "demand"
            if value > at_resolution(s.stop_at):
                return False, "satisfied"
        return on, "hold"


def _inside(ranges: Sequence[TimeRange], now_ms: int, tz: ZoneInfo) -> bool:
    local = dt.datetime.fromtimestamp(now_ms / 1000, tz)
    return any(r.contains(local) for r in ranges)
