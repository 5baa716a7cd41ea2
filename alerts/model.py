"""Value objects of the alert engine: conditions reported by rules and transitions of alerts."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from alerts._lookups import LateLookups
from alerts._series import SeriesTable
from alerts.history import ReadingHistory
from alerts.profiles import StandardProfile
from alerts.settings import AlertSettings, Severity
from archmon.timeutil import to_iso

__all__ = ["EXEMPT_RULES", "OPEN_STATES", "AlertState", "Condition", "ConfiguredCalibration", "HistoryRef",
           "RuleContext", "SensorInfo", "Transition", "is_exempt"]

AlertState = Literal["pending", "active", "acknowledged", "cleared", "closed", "cancelled"]
OPEN_STATES: tuple[AlertState, ...] = ("pending", "active", "acknowledged", "cleared")

# Rules that are never silenced by a maintenance window, never disabled and never below critical
# (``check_config`` rejects both): fire and water are what the archive must always hear about.
EXEMPT_RULES: frozenset[str] = frozenset({"smoke", "leak"})


def is_exempt(rule: str, severity: str) -> bool:
    """Whether a maintenance window leaves an alert alone: smoke and leak always, and any alert the site
    made critical."""
    return rule in EXEMPT_RULES or severity == "critical"


class ConfiguredCalibration(NamedTuple):
    """The latest ``calibrated_on`` of a sensor's ``[sensors.calibration.<quantity>]`` tables, and its certificate."""

    calibrated_on: dt.date
    certificate: str | None


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What the rules need to know about one sensor.

    Attributes:
        id: sensor id; room: its room; kind: configured kind.
        expected_interval_s: how often it should report.
        profile: the room's standard profile with overrides applied.
        configured_calibration: the calibration its config names (None: none, or not a date), the last one
            for the calibration-due rule until one is recorded.
        live: expected to report live; False for a logger whose readings come only from imported files
            (``source = "import"``), which the stale rule leaves alone.
    """

    id: str
    room: str
    kind: str
    expected_interval_s: float
    profile: StandardProfile
    configured_calibration: ConfiguredCalibration | None = None
    live: bool = True


@dataclass(slots=True)
class HistoryRef:
    """Where rules look up stored readings while judging (a late reading's neighbours in time): the readings
    store, read-only, set by the live service (None: not available, e.g. a replay without one), and what was
    read of it in the engine's current step (``lookups``: read once per step, counted in work units)."""

    source: ReadingHistory | None = None
    lookups: LateLookups = field(default_factory=LateLookups)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule is built from: settings, sensors, the site's zone, the engine's series table
    (newest reading and shared windows of every series, see :mod:`alerts._series`) and the stored readings."""

    settings: AlertSettings
    sensors: dict[str, SensorInfo]
    tz: ZoneInfo
    series: SeriesTable = field(default_factory=SeriesTable)
    history: HistoryRef = field(default_factory=HistoryRef)


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's judgement of one subject at one moment: the position relative to its limit.

    Attributes:
        rule: registry name of the rule.
        key: the subject within the rule (``sensor/quantity/side``, ``sensor``...); with ``rule`` it
            identifies the one open alert.
        room: room id; sensor: sensor id or None for a room-level rule; quantity: or None.
        state: True violated, False clearly fine (past the clear margin), None in between (hold).
        ts_ms: when the judgement applies.
        value: the value judged; limit: the limit it was judged against.
        severity: severity of an alert it raises.
        delay_s: how long ``state`` must stay True before the alert fires.
        clear_delay_s: how long it must stay False before the alert clears.
        detail: short code for the message (``low``, ``high``, ``offline``...).
        since_ms: for a violation, when it began if a late reading moved that (the violation's readings
            are known only now): a pending delay restarts from it (None: from when the key went pending).
    """

    rule: str
    key: str
    room: str
    sensor: str | None
    quantity: str | None
    state: bool | None
    ts_ms: int
    value: float | None = None
    limit: float | None = None
    severity: Severity = "major"
    delay_s: float = 0.0
    clear_delay_s: float = 0.0
    detail: str = ""
    since_ms: int | None = None

    @property
    def ident(self) -> str:
        """``rule:key``, the identity of the alert this condition drives."""
        return f"{self.rule}:{self.key}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for persistence)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of an alert's state, as printed by ``archmon replay`` and kept in the store."""

    ts_ms: int
    alert: int
    rule: str
    severity: str
    room: str
    sensor: str | None
    quantity: str | None
    state: str
    value: float | None = None
    limit: float | None = None
    detail: str = ""
    by: str | None = None
    title: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, tz: ZoneInfo | None = None) -> str:
        """One JSON object (one line) with an ISO-8601 ``ts``."""
        data: dict[str, Any] = {
            "ts": to_iso(self.ts_ms, tz),
            "alert": self.alert,
            "rule": self.rule,
            "severity": self.severity,
            "room": self.room,
            "sensor": self.sensor,
            "quantity": self.quantity,
            "state": self.state,
            "value": None if self.value is None else round(self.value, 4),
            "limit": self.limit,
            "detail": self.detail,
            "title": self.title,
        }
        if self.by is not None:
            data["by"] = self.by
        data.update(self.extra)
        return json.dumps(data, ensure_ascii=False)
