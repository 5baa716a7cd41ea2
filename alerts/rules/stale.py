"""Stale/offline: no reading for N × the sensor's expected interval; availability messages add evidence."""

from __future__ import annotations

import heapq
from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from alerts.settings import stale_after_ms
from archmon.domain import Reading

__all__ = ["StaleRule"]


class StaleRule(Rule):
    """A sensor is online while it reported within its timeout (``stale.factor`` × expected interval).

    The timeout runs from the last reading, or from the engine's start if that is later (a sensor never
    heard of, or every sensor after a restart: downtime does not count against them), so the rule needs
    nothing from before a restart. An ``offline`` availability message marks the sensor stale at once;
    ``online`` alone does not clear it, only a reading taken at or after the offline message does
    (availability is extra evidence, not the only one).

    Late readings: a reading older than its series' newest is not judged (``late = "skip"``), and a
    reading older than the sensor's last-seen time does not move it: a redelivered backlog proves nothing
    about the sensor now, so it neither clears an offline alert nor postpones a stale one.

    Memory per sensor: last-seen time and one deadline on a heap (re-pushed lazily when it falls due after
    newer readings), not one heap entry per reading.

    A sensor that is not expected to report live (``SensorInfo.live`` False: ``source = "import"``, readings
    only from imported files) is never armed, so it never goes stale.
    """

    name = "stale"
    default_severity = "major"
    DUE_SLICE = 50
    """Stale conditions per ``on_due`` call (each raises an alert): the engine calls again while more are due,
    so a step stays short when every sensor shares one deadline (after a restart or a broker outage)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: dict[str, int] = {}
        self._offline: dict[str, int] = {}  # sensor -> time of the offline message that marked it
        self._heap: list[tuple[int, str]] = []
        self._armed: dict[str, int] = {}  # sensor -> the deadline of its heap entry (at most one each)
        self._timeouts: dict[float, int] = {}  # expected interval -> timeout

    def _timeout_ms(self, sensor: SensorInfo) -> int:
        timeout = self._timeouts.get(sensor.expected_interval_s)
        if timeout is None:
            timeout = self._timeouts[sensor.expected_interval_s] = stale_after_ms(sensor.expected_interval_s,
                                                                                   self.ctx.settings.stale)
        return timeout

    def _arm(self, sensor: SensorInfo) -> None:
        if sensor.live and sensor.id not in self._armed:
            due = self._armed[sensor.id] = self._last[sensor.id] + self._timeout_ms(sensor)
            heapq.heappush(self._heap, (due, sensor.id))

    def start(self, now_ms: int) -> None:
        """Every sensor gets a fresh timeout from the engine's start: the downtime of a restart is not the
        sensors' fault (their readings during it were not judged), so a restart after a long stop does not
        flood stale alerts; a sensor that stays silent goes stale one timeout after the start."""
        for sensor in self.ctx.sensors.values():
            self._last[sensor.id] = max(self._last.get(sensor.id, now_ms), now_ms)
            self._arm(sensor)

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        last = self._last.get(sensor.id)
        offline = self._offline.get(sensor.id)
        back = offline is not None and reading.ts_ms >= offline
        if back:
            del self._offline[sensor.id]
        elif last is not None and reading.ts_ms <= last:
            return []
        self._last[sensor.id] = max(reading.ts_ms, last or reading.ts_ms)
        self._arm(sensor)
        if (offline is not None and not back) or self.quiet(sensor.id, False):
            return []
        return [self.condition(sensor, sensor.id, False, reading.ts_ms, limit=self._timeout_ms(sensor) / 1000)]

    def on_availability(self, sensor: SensorInfo, state: str, ts_ms: int) -> list[Condition]:
        timeout = self._timeout_ms(sensor)
        last = self._last.get(sensor.id, ts_ms)
        if state == "offline":
            self._offline[sensor.id] = ts_ms
            return [self.condition(
                sensor, sensor.id, True, ts_ms, value=(ts_ms - last) / 1000, limit=timeout / 1000,
                detail="offline",
            )]
        silent = ts_ms - last >= timeout
        return [self.condition(
            sensor, sensor.id, True if silent else None, ts_ms, value=(ts_ms - last) / 1000, limit=timeout / 1000,
        )]

    def next_due(self) -> int | None:
        heap = self._heap
        while heap:
            due, sensor_id = heap[0]
            sensor = self.ctx.sensors.get(sensor_id)
            if sensor is None:
                heapq.heappop(heap)
                self._armed.pop(sensor_id, None)
                continue
            actual = self._last[sensor_id] + self._timeout_ms(sensor)
            if actual <= due:
                return due
            heapq.heapreplace(heap, (actual, sensor_id))  # newer readings since it was armed
            self._armed[sensor_id] = actual
        return None

    def on_due(self, now_ms: int) -> list[Condition]:
        out = []
        while len(out) < self.DUE_SLICE and (due := self.next_due()) is not None and due <= now_ms:
            _, sensor_id = heapq.heappop(self._heap)
            del self._armed[sensor_id]
            sensor = self.ctx.sensors[sensor_id]
            timeout = self._timeout_ms(sensor)
            out.append(self.condition(
                sensor, sensor_id, True, due, value=timeout / 1000, limit=timeout / 1000, detail="silent",
            ))
        return out

    def adopt(self, previous: Rule, now_ms: int) -> None:
        """Keep last-seen times and offline evidence of sensors still configured (deadlines are re-armed
        with the new timeouts); a sensor added by the new configuration gets its timeout from now."""
        known = previous._last if isinstance(previous, StaleRule) else {}
        if isinstance(previous, StaleRule):
            self._offline = {s: ts for s, ts in previous._offline.items() if s in self.ctx.sensors}
        for sensor in self.ctx.sensors.values():
            self._last[sensor.id] = known.get(sensor.id, now_ms)
            self._arm(sensor)

    def snapshot(self) -> dict[str, Any]:
        return {"last": dict(self._last), "offline": dict(self._offline)}
