"""Calibration due (校准到期): a warning from ``warn_before_days`` before an instrument's calibration runs out.

Per instrument that needs calibrating (``alerts.calibration.due``: temperature/humidity sensors unless
``[alerts.calibration.sensors.<id>] required`` says otherwise), the alert is raised when it becomes due soon
(detail ``due_soon``), updated when the due date passes (``overdue``), and cleared when a calibration is
recorded that puts the due date beyond the warning days again. Its last calibration is its latest record,
else the ``calibrated_on`` of its config. Instruments that need calibrating and have none on record at all
raise one site-wide warning (key ``uncalibrated``, ``[alerts.calibration] uncalibrated = false`` turns it
off), cleared once every one of them has one.

Nothing large is scanned: the latest record per sensor is read once when the rule is attached
(:func:`alerts.calibration.attach_calibrations`, one indexed query); after that each instrument has one
deadline (its next status change) on a heap, and records added later, by any process, reach the rule
through the engine's one look for changes per advance (``AlertStore.pending_changes``: the records'
``unseen`` flag), so a new record clears its alert at the next tick, in simulated time too.

After a restart or a reload every instrument is judged once at the start: an alert still open is the same
alert (the lifecycle re-fires nothing), an instrument calibrated meanwhile clears. The rule is inert until
attached: a replay of old readings raises no calibration alerts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any, Protocol

from alerts.calibration.due import DueDates, LastCalibration, due_dates, last_calibration
from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from alerts.store._calibration import CalibrationRecord

__all__ = ["UNCALIBRATED", "CalibrationDueRule", "CalibrationLedger"]

UNCALIBRATED = "uncalibrated"
"""The key of the site-wide "no calibration on record" alert."""


class CalibrationLedger(Protocol):
    """Where the rule reads each sensor's latest record (``AlertStore``)."""

    def latest_calibrations(self) -> dict[str, CalibrationRecord]: ...


class CalibrationDueRule(Rule):
    """One warning per instrument whose calibration is due soon or overdue; one for instruments never calibrated."""

    name = "calibration_due"
    default_severity = "warning"
    quantities = frozenset()  # judges no readings: time and records only

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger: CalibrationLedger | None = None
        self._last: dict[str, LastCalibration] = {}
        self._dates: dict[str, DueDates] = {}
        self._reported: dict[str, str] = {}  # key -> status last reported ("ok", "due_soon", "overdue"; "0"/"1")
        self._heap: list[tuple[int, str]] = []
        self._armed: dict[str, int] = {}  # sensor -> its one valid deadline on the heap
        self._start: int | None = None
        self._full = False  # every instrument to be judged at the next look (attach, start, reload)

    @property
    def _terms(self) -> Any:
        return self.ctx.settings.calibration

    def _required(self, sensor: SensorInfo) -> bool:
        return bool(self._terms.required(sensor.id, sensor.kind))

    # -- records -----------------------------------------------------------------------------------
    def attach(self, ledger: CalibrationLedger) -> None:
        """Read each sensor's latest record from ``ledger`` and judge every instrument at the next look."""
        self.ledger = ledger
        latest = ledger.latest_calibrations()
        self._last = {}
        for sensor in self.ctx.sensors.values():
            last = last_calibration(latest.get(sensor.id), sensor.configured_calibration)
            if last is not None:
                self._last[sensor.id] = last
        self._full = True

    def on_records(self, records: Iterable[CalibrationRecord], now_ms: int) -> list[Condition]:
        """Records added since the last look (by any process): new due dates, alerts cleared or raised."""
        if self.ledger is None:
            return []
        changed = []
        for record in records:
            if record.sensor not in self.ctx.sensors:
                continue
            current = self._last.get(record.sensor)
            if (current is None or current.source == "config"
                    or (record.calibrated_on, record.id) > (current.calibrated_on, current.record_id or 0)):
                self._last[record.sensor] = LastCalibration(record.calibrated_on, record.certificate, "record",
                                                            record.id)
                changed.append(record.sensor)
        if self._full or self._start is None or not changed:
            return []  # the judgement of every instrument to come takes them
        out: list[Condition] = []
        for sensor_id in changed:
            sensor = self.ctx.sensors[sensor_id]
            if self._required(sensor):
                out.extend(self._judge(sensor, self._dates_of(sensor_id), now_ms))
        out.extend(self._uncalibrated(now_ms))
        return out

    def _dates_of(self, sensor_id: str) -> DueDates:
        last = self._last[sensor_id]
        dates = self._dates[sensor_id] = due_dates(last.calibrated_on, self._terms.interval_for(sensor_id),
                                                   self._terms.warn_before_days, self.ctx.tz)
        return dates

    # -- time --------------------------------------------------------------------------------------
    def start(self, now_ms: int) -> None:
        self._start = now_ms

    def next_due(self) -> int | None:
        if self.ledger is None or self._start is None:
            return None
        if self._full:
            return self._start
        heap = self._heap
        while heap and self._armed.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # superseded by a newer record's deadline
        return heap[0][0] if heap else None

    def on_due(self, now_ms: int) -> list[Condition]:
        if self._full:
            self._full = False
            return self._judge_all(now_ms)
        out: list[Condition] = []
        while (due := self.next_due()) is not None and due <= now_ms:
            _, sensor_id = heapq.heappop(self._heap)
            del self._armed[sensor_id]
            sensor = self.ctx.sensors.get(sensor_id)
            if sensor is not None and sensor_id in self._dates:
                out.extend(self._judge(sensor, self._dates[sensor_id], due))
        return out

    def _judge_all(self, now_ms: int) -> list[Condition]:
        self._heap, self._armed, self._dates = [], {}, {}
        out: list[Condition] = []
        judged = set()
        for sensor in self.ctx.sensors.values():
            if sensor.id in self._last and self._required(sensor):
                judged.add(sensor.id)
                out.extend(self._judge(sensor, self._dates_of(sensor.id), now_ms))
        watched = self.watched if isinstance(self.watched, set) else set()
        for key in sorted(k for k in watched if k not in judged and k != UNCALIBRATED):
            self._reported[key] = "ok"  # removed from the config, or no longer needs calibrating
            out.append(Condition(rule=self.name, key=key, room="", sensor=key, quantity=None, state=False,
                                 ts_ms=now_ms, severity=self.severity, detail="ok"))
        out.extend(self._uncalibrated(now_ms))
        return out

    def _judge(self, sensor: SensorInfo, dates: DueDates, at_ms: int) -> list[Condition]:
        """Report the instrument's status at ``at_ms`` if it changed, and arm its next change."""
        following = dates.next_change_ms(at_ms)
        if following is not None:
            self._armed[sensor.id] = following
            heapq.heappush(self._heap, (following, sensor.id))
        else:
            self._armed.pop(sensor.id, None)
        status = dates.status(at_ms)
        if self._reported.get(sensor.id) == status:
            return []
        self._reported[sensor.id] = status
        violated = status != "ok"
        if not violated and self.quiet(sensor.id, False):
            return []
        return [self.condition(sensor, sensor.id, violated, at_ms, value=dates.days_left(at_ms), detail=status)]

    def _uncalibrated(self, now_ms: int) -> list[Condition]:
        """The site-wide alert while instruments that need calibrating have none on record."""
        missing = sum(1 for s in self.ctx.sensors.values() if s.id not in self._last and self._required(s))
        violated = bool(self._terms.uncalibrated and missing)
        state = "1" if violated else "0"
        if self._reported.get(UNCALIBRATED) == state or (not violated and self.quiet(UNCALIBRATED, False)):
            self._reported[UNCALIBRATED] = state
            return []
        self._reported[UNCALIBRATED] = state
        return [Condition(rule=self.name, key=UNCALIBRATED, room="", sensor=None, quantity=None, state=violated,
                          ts_ms=now_ms, value=float(missing), severity=self.severity, detail=UNCALIBRATED)]

    # -- reload ------------------------------------------------------------------------------------
    def adopt(self, previous: Rule, now_ms: int) -> None:
        """Keep the ledger; the latest records are read again and every instrument judged with the new
        configuration (intervals, sensors added or removed) at once."""
        self._start = now_ms
        if isinstance(previous, CalibrationDueRule) and previous.ledger is not None:
            self._reported = dict(previous._reported)
            self.attach(previous.ledger)

    def snapshot(self) -> dict[str, Any]:
        return {"last": {s: last.calibrated_on.isoformat() for s, last in self._last.items()},
                "due": {s: dates.due_on.isoformat() for s, dates in self._dates.items()},
                "reported": dict(self._reported)}
