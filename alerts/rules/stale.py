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
    heard of, or every sensor after a restart: downtime does not count against them).
    An ``offline`` availability message marks the sensor stale at once; ``online`` alone does not
    clear it, only a reading does (availability is extra evidence, not the only one).
    """

    name = "stale"
    default_severity = "major"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: dict[str, int] = {}
        self._offline: set[str] = set()
        self._heap: list[tuple[int, str]] = []
        self._timeouts: dict[str, int] = {}
        self._due: dict[str, int] = {}  # sensor -> its deadline: last reading + timeout (heap entries match it)

    def _timeout_ms(self, sensor: SensorInfo) -> int:
        timeout = self._timeouts.get(sensor.id)
        if timeout is None:
            timeout = self._timeouts[sensor.id] = stale_after_ms(sensor.expected_interval_s, self.ctx.settings.stale)
        return timeout

    def start(self, now_ms: int) -> None:
        """Every sensor gets a fresh timeout from the engine's start: the downtime of a restart is not the
        sensors' fault (their readings during it were not judged), so a restart after a long stop does not
        flood stale alerts; a sensor that stays silent goes stale one timeout after the start."""
        for sensor in self.ctx.sensors.values():
            last = self._last[sensor.id] = max(self._last.get(sensor.id, now_ms), now_ms)
            due = self._due[sensor.id] = last + self._timeout_ms(sensor)
            heapq.heappush(self._heap, (due, sensor.id))

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        last = self._last.get(sensor.id)
        if last is not None and reading.ts_ms <= last and sensor.id not in self._offline:
            return []
        latest = self._last[sensor.id] = max(reading.ts_ms, last or reading.ts_ms)
        self._offline.discard(sensor.id)
        timeout = self._timeout_ms(sensor)
        due = self._due[sensor.id] = latest + timeout
        heapq.heappush(self._heap, (due, sensor.id))
        if self.quiet(sensor.id, False):
            return []
        return [self.condition(sensor, sensor.id, False, reading.ts_ms, limit=timeout / 1000)]

    def on_availability(self, sensor: SensorInfo, state: str, ts_ms: int) -> list[Condition]:
        timeout = self._timeout_ms(sensor)
        last = self._last.get(sensor.id, ts_ms)
        if state == "offline":
            self._offline.add(sensor.id)
            return [self.condition(
                sensor, sensor.id, True, ts_ms, value=(ts_ms - last) / 1000, limit=timeout / 1000,
                detail="offline",
            )]
        self._offline.discard(sensor.id)
        silent = ts_ms - last >= timeout
        return [self.condition(
            sensor, sensor.id, True if silent else None, ts_ms, value=(ts_ms - last) / 1000, limit=timeout / 1000,
        )]

    def next_due(self) -> int | None:
        while self._heap:
            due, sensor_id = self._heap[0]
            if due == self._due.get(sensor_id):
                return due
            heapq.heappop(self._heap)  # superseded by a later reading
        return None

    def on_due(self, now_ms: int) -> list[Condition]:
        out = []
        while (due := self.next_due()) is not None and due <= now_ms:
            _, sensor_id = heapq.heappop(self._heap)
            sensor = self.ctx.sensors[sensor_id]
            timeout = self._timeout_ms(sensor)
            out.append(self.condition(
                sensor, sensor_id, True, due, value=timeout / 1000, limit=timeout / 1000, detail="silent",
            ))
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"last": self._last, "offline": sorted(self._offline)}

    def restore(self, data: dict[str, Any]) -> None:
        self._last = {k: int(v) for k, v in data.get("last", {}).items()}
        self._offline = set(data.get("offline", []))
