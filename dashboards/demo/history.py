"""The demo's past: 30 days of every sensor, the events in them and the access sessions of the stores.

:func:`history_site` adds the month's scripted events to the ordinary site (days counted back from the
day the history ends, times local):

- 26 days back, 13:40: the paper store's dehumidifier fails for 3.5 h (RH +10 %RH, ramping in over 50 min);
- 19 days back, 02:10: the film store's cooling fails for 3 h (+2.2 ℃ over 45 min), at night;
- 15 days back, 10:05: the monthly smoke-detector test in the paper store (40 s);
- 11 days back, 10:00: the reading room's humidifier fails for 5 h (RH -7 %RH over 1.5 h);
- 4 days back, 15:20: the paper store's air conditioner restarts badly: +2.6 ℃ for a quarter of an hour,
  inside the band (14-24 ℃) but a rate-of-change and a 24 h-stability alert;
- 50 minutes before the end: somebody enters the film store without registering (4 minutes); nobody has
  acknowledged it when the live part starts.

:func:`history_readings` gives every sensor's readings of ``[start, end)`` in time order, as the devices
would have reported them (every 5 minutes, each device a few seconds after the mark, at its resolution;
doors and detectors also at each change; Zigbee batteries hourly). :func:`history_sessions` gives the
access sessions of the stores' door openings: most visits registered by two keepers (a minute or two
before the door opens, sometimes just after), one in seven not.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import NamedTuple
from zoneinfo import ZoneInfo

from collector.backfill import HistoricalReading
from dashboards.demo.rooms import Span
from dashboards.demo.site import SENSORS, DemoSensor, DemoSite, base_site
from devices.simulators.climate import Excursion

__all__ = ["HISTORY_DAYS", "STEP_S", "SessionPlan", "history_count", "history_readings", "history_sessions",
           "history_site", "stable_rng", "unregistered_openings"]

HISTORY_DAYS = 30
STEP_S = 300
BATTERY_EVERY_S = 3600
_MINUTE = 60_000
_HOUR = 3_600_000

PEOPLE = (("张伟", "李娜"), ("王芳", "刘洋"), ("陈静", "杨帆"), ("赵磊", "黄敏"))
PURPOSES = ("查阅干部档案 consult cadre files", "档案整理入库 file new records", "库房安全检查 store inspection",
            "借阅档案归还 return borrowed files")


class SessionPlan(NamedTuple):
    """An access session to register at ``open_ms`` and close at ``close_ms`` (the register's arguments)."""

    room: str
    open_ms: int
    close_ms: int
    people: tuple[str, ...]
    purpose: str
    approval: str
    by: str


def stable_rng(*key: object) -> random.Random:
    """A random generator seeded from ``key``: the same choices on every run and machine."""
    return random.Random(int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "big"))


def _local(end_ms: int, tz: ZoneInfo, days_back: int, at: str) -> int:
    """The local time ``at`` (HH:MM) on the day ``days_back`` days before the day of ``end_ms``."""
    day = datetime.fromtimestamp(end_ms / 1000, tz).date() - timedelta(days=days_back)
    hour, minute = (int(part) for part in at.split(":"))
    return int(datetime.combine(day, clock_time(hour, minute), tzinfo=tz).timestamp() * 1000)


def _fault(start_ms: int, hours: float, ramp_min: float, delta_c: float, delta_rh: float) -> Excursion:
    kind = "cooling_failure" if delta_c > 0 and abs(delta_c) * 4 > abs(delta_rh) else (
        "dehumidifier_failure" if delta_rh > 0 else "humidifier_failure")
    return Excursion(start_ms, start_ms + int(hours * _HOUR), int(ramp_min * _MINUTE), delta_c, delta_rh, kind)


def unregistered_openings(end_ms: int) -> tuple[Span, ...]:
    """The scripted door openings of the history that nobody registers (the film store's, at the end)."""
    start = end_ms - 50 * _MINUTE
    return (Span(start, start + 4 * _MINUTE),)


def history_site(end_ms: int, tz: ZoneInfo) -> DemoSite:
    """The ordinary site plus the month's scripted events (module docstring), for a history ending at ``end_ms``."""
    site = base_site()
    return site.replace(
        rooms={
            "paper": site.rooms["paper"].with_excursions([
                _fault(_local(end_ms, tz, 26, "13:40"), 3.5, 50, 0.5, 10.0),
                _fault(_local(end_ms, tz, 4, "15:20"), 0.25, 5, 2.6, -1.5),
            ]),
            "film": site.rooms["film"].with_excursions([_fault(_local(end_ms, tz, 19, "02:10"), 3.0, 45, 2.2, -2.0)]),
            "reading": site.rooms["reading"].with_excursions([
                _fault(_local(end_ms, tz, 11, "10:00"), 5.0, 90, -0.3, -7.0)]),
        },
        doors={"film": site.doors["film"].with_openings(unregistered_openings(end_ms))},
        smoke={"paper": site.smoke["paper"].with_spans([Span(start := _local(end_ms, tz, 15, "10:05"),
                                                              start + 40_000)])},
    )


def _sensor_readings(site: DemoSite, sensor: DemoSensor, start_ms: int, end_ms: int) -> Iterator[HistoricalReading]:
    """One sensor's readings of ``[start_ms, end_ms)`` in time order."""
    step = STEP_S * 1000
    first = (start_ms // step + 1) * step + sensor.offset_s * 1000
    marks = range(first, end_ms, step)
    changes: list[int] = []
    if "door" in sensor.quantities:
        door = site.doors[sensor.room]
        changes = sorted(t for o in door.openings(start_ms, end_ms) for t in o if start_ms <= t < end_ms)
    elif "smoke" in sensor.quantities or "leak" in sensor.quantities:
        alarm = (site.smoke if "smoke" in sensor.quantities else site.leak)[sensor.room]
        changes = sorted(t for span in alarm.spans for t in span if start_ms <= t < end_ms)
    times = heapq.merge(marks, changes)
    battery_every = BATTERY_EVERY_S * 1000
    last_battery = None
    previous = None
    for ts in times:
        if ts == previous:
            continue
        previous = ts
        for quantity in sensor.quantities:
            value = round(site.value(sensor.room, quantity, ts), sensor.decimals)
            yield HistoricalReading(sensor.id, quantity, ts, value)
        if sensor.battery is not None and (last_battery is None or ts - last_battery >= battery_every):
            last_battery = ts
            yield HistoricalReading(sensor.id, "battery", ts, float(sensor.battery))


def history_readings(site: DemoSite, start_ms: int, end_ms: int) -> Iterator[HistoricalReading]:
    """Every sensor's readings of ``[start_ms, end_ms)``, merged in time order (what a judge replays)."""
    return heapq.merge(*(_sensor_readings(site, sensor, start_ms, end_ms) for sensor in SENSORS),
                       key=lambda reading: reading.ts_ms)


def history_count(start_ms: int, end_ms: int) -> int:
    """About how many readings :func:`history_readings` gives (for a progress display)."""
    marks = (end_ms - start_ms) // (STEP_S * 1000)
    hours = (end_ms - start_ms) // (BATTERY_EVERY_S * 1000)
    return sum(len(s.quantities) * marks + (hours if s.battery is not None else 0) for s in SENSORS)


def history_sessions(site: DemoSite, start_ms: int, end_ms: int, tz: ZoneInfo, *, unregistered: float = 1 / 7,
                     skip: frozenset[Span] = frozenset()) -> list[SessionPlan]:
    """The access sessions of the stores' door openings in ``[start_ms, end_ms)``, by opening time.

    Args:
        unregistered: the share of visits nobody registers.
        skip: openings that get no session (the scripted unregistered ones).
    """
    plans: list[SessionPlan] = []
    for room, door in sorted(site.doors.items()):
        last: SessionPlan | None = None
        for number, opening in enumerate(door.openings(start_ms, end_ms)):
            rng = stable_rng("session", room, opening.start_ms)
            if opening in skip or rng.random() < unregistered:
                continue
            before = rng.random() < 0.75
            open_ms = opening.start_ms - rng.randint(40, 200) * 1000 if before else \
                opening.start_ms + rng.randint(5, 45) * 1000
            close_ms = min(end_ms - 1, opening.end_ms + rng.randint(30, 150) * 1000)
            if last is not None and last.room == room and open_ms <= last.close_ms + 30_000:
                plans[-1] = last = last._replace(close_ms=max(last.close_ms, close_ms))  # one visit, two openings
                continue
            people = PEOPLE[rng.randrange(len(PEOPLE))]
            day = datetime.fromtimestamp(opening.start_ms / 1000, tz)
            last = SessionPlan(room, open_ms, close_ms, people, PURPOSES[rng.randrange(len(PURPOSES))],
                               f"DA-{day:%Y%m%d}-{number % 100:02d}", people[0])
            plans.append(last)
    return sorted(plans, key=lambda plan: plan.open_ms)
