"""The rule interface: a rule turns readings and time into conditions; the engine runs the lifecycle."""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from alerts._series import Newest, WindowNeeds
from alerts.model import Condition, RuleContext, SensorInfo
from alerts.settings import Severity
from archmon.domain import Reading

if TYPE_CHECKING:
    from alerts.rebuild import SeriesHistory

__all__ = ["RESOLUTION_DECIMALS", "LateReadings", "Rule", "at_resolution", "hysteresis"]

LateReadings = Literal["skip", "window", "always"]
"""Which readings older than their series' newest a rule judges: ``skip`` none (it judges the current
state, which an older reading must not override), ``window`` those inside the 24 h window (it aggregates by
time), ``always`` even those older than the window (alarms nobody may miss)."""


class _EveryKey:
    """The keys a rule outside an engine reports: all of them."""

    def __contains__(self, item: object) -> bool:
        return True


_EVERY_KEY = _EveryKey()


class Rule:
    """Base class of every rule kind.

    A rule is a small state machine over its own memory (last values, windows, timers). It reports
    :class:`Condition` objects; delays, clear delays and the alert lifecycle are the engine's job, so
    every rule gets them the same way.

    Attributes:
        name: registry name (``band``, ``stale``...), also the ``rule`` field of alerts.
        default_severity: severity unless the site's ``[alerts.rules.<name>]`` sets another.
        quantities: the quantities whose readings the rule judges (None: all); the engine hands it no
            others, so :meth:`on_reading` must ignore every other quantity.
        watched: this rule's keys whose conditions count even when not violated (the engine sets its
            lifecycle's live set; by default every key), see :meth:`quiet`.
        firing: this rule's keys whose alert is on now (active or clearing), each with the device time its
            violation began (the engine sets its lifecycle's live map; by default none): a late reading's
            past run overlapping it is that alert's excursion, not another one.
        late: which late readings the engine hands the rule (see :data:`LateReadings`); a rule that takes
            late readings tells them apart by ``reading.ts_ms`` < its series' newest (``ctx.series``).
    """

    name: ClassVar[str] = ""
    default_severity: ClassVar[Severity] = "major"
    quantities: frozenset[str] | None = None
    late: ClassVar[LateReadings] = "skip"
    stored: ClassVar[bool] = True
    """Whether the rule judges a reading whose data its memory already holds (rebuilt from the store, see
    :mod:`alerts.catchup`): False for a rule whose memory adds every reading up (the day verdict)."""

    def __init__(self, ctx: RuleContext, severity: Severity | None = None) -> None:
        self.ctx = ctx
        self.severity: Severity = severity or self.default_severity
        self.watched: Container[str] = _EVERY_KEY
        self.firing: Mapping[str, int] = {}

    def quiet(self, key: str, state: bool | None) -> bool:
        """Whether a condition about ``key`` in ``state`` would change nothing, so need not be reported.

        A violation (True) always counts; fine (False) or within the margin (None) counts only for a key
        the engine watches (an alert phase under way or a maintenance hold). Rules check this before
        building a condition, so a reading inside every limit costs no objects.
        """
        return state is not True and key not in self.watched

    def start(self, now_ms: int) -> None:
        """Called once with the engine's first notion of time (after :meth:`restore`)."""

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        """Judge one reading of a configured sensor."""
        return []

    def on_availability(self, sensor: SensorInfo, state: str, ts_ms: int) -> list[Condition]:
        """Judge an availability (``online``/``offline``) message."""
        return []

    def next_due(self) -> int | None:
        """The next time (ms) this rule wants :meth:`on_due` called, or None."""
        return None

    def on_due(self, now_ms: int) -> list[Condition]:
        """Time-driven judgements that fall due at or before ``now_ms``."""
        return []

    def window_needs(self, sensor: SensorInfo, quantity: str) -> WindowNeeds:
        """The shared windows this rule reads for a series (asked once, when the engine first sees it)."""
        return WindowNeeds()

    def rebuild(self, sensor: SensorInfo, history: SeriesHistory) -> None:
        """Rebuild this rule's memory of one series from the readings store at start (see
        :mod:`alerts.rebuild`); the engine has already set the series' newest reading and windows."""

    def rewind(self, sensor: SensorInfo, quantity: str, judged: Newest | None) -> None:
        """The engine judges a series' stored readings after ``judged`` again (its newest judged reading,
        None: unknown): memory derived from the newest reading goes back to it (see :mod:`alerts.catchup`)."""

    def adopt(self, previous: Rule, now_ms: int) -> None:
        """Take over the memory of the same rule of the engine being replaced (configuration reload at
        ``now_ms``; the series table, hence every slot, is the same)."""

    def marker(self) -> dict[str, Any] | None:
        """Small JSON-able state to persist when it changes (None: nothing); the engine writes it after
        time-driven judgements and hands it back to :meth:`restore` at start."""
        return None

    def restore(self, data: dict[str, Any]) -> None:
        """Reload what :meth:`marker` returned (files of older versions may hold other shapes: ignore)."""

    def snapshot(self) -> dict[str, Any]:
        """The rule's memory as JSON-able data, for tests and diagnostics (never persisted)."""
        return {}

    def condition(self, sensor: SensorInfo, key: str, state: bool | None, ts_ms: int, **extra: Any) -> Condition:
        """A condition of this rule about ``sensor`` (room and severity filled in)."""
        return Condition(
            rule=self.name, key=key, room=sensor.room, sensor=sensor.id, state=state, ts_ms=ts_ms,
            severity=self.severity, **{"quantity": None, **extra},
        )


RESOLUTION_DECIMALS = 3  # finer than any sensor's resolution (0.01 ℃, 0.1 %RH), coarser than float noise


def at_resolution(value: float) -> float:
    """A computed value (a difference, a swing) rounded to sensor resolution before it meets a limit, so
    float noise does not turn "exactly at the limit" into "over" (16.1 − 14.1 = 2.0000000000000018)."""
    return round(value, RESOLUTION_DECIMALS)


@functools.lru_cache(maxsize=4096)
def _thresholds(limit: float, margin: float, above: bool) -> tuple[float, float]:
    """A limit and its clear-margin edge at sensor resolution, signed so that "past" is always "greater"."""
    limit = at_resolution(limit)
    back = at_resolution(limit - margin if above else limit + margin)
    return (limit, back) if above else (-limit, -back)


def hysteresis(value: float, limit: float, margin: float, *, above: bool, inclusive: bool = False) -> bool | None:
    """Position of ``value`` against a limit with a clear margin.

    Values and thresholds are compared at sensor resolution (:func:`at_resolution`): a limit is "not
    greater than" (不得大于), so a value exactly at it is fine.

    Args:
        value: the measured value.
        limit: the limit.
        margin: how far back inside the value must be to count as clearly fine.
        above: True when exceeding the limit upwards is the violation.
        inclusive: the limit itself is a violation (``≥``/``≤``, e.g. RH ≥ 65 % mould risk); clearly fine
            is then strictly past the clear margin.

    Returns:
        True past the limit, False past the clear margin, None in between.
    """
    limit, back = _thresholds(limit, margin, above)
    value = round(value, RESOLUTION_DECIMALS) if above else -round(value, RESOLUTION_DECIMALS)
    if value > limit or (inclusive and value == limit):
        return True
    fine = value < back if inclusive else value <= back
    return False if fine else None
