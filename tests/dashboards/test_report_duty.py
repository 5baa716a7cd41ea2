"""The register's duty readings are the readings taken nearest the duty times, as measured (never an hourly
mean), and a day missing a duty reading is never marked within limits (review findings 4 and 8)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from archmon.config import Config
from archmon.domain import Reading
from collector.store import SqliteStore
from dashboards.reports.register import build_register
from tests.dashboards.small_site import TZ, local_ms, report, sensor_toml, small_site, write


def _day(day: int, temperature, *, skip=lambda h, m: False) -> list[Reading]:
    """A day of January 2025 at one reading a minute: ``temperature(hour, minute)``, 50 %RH."""
    out = []
    for minute in range(1440):
        h, m = divmod(minute, 60)
        if skip(h, m):
            continue
        ts = local_ms(2025, 1, day, h, m)
        out += [Reading("th1", "temperature", temperature(h, m), ts, "A1"), Reading("th1", "humidity", 50.0, ts, "A1")]
    return out


def _site(tmp_path: Path) -> Config:
    config = small_site(tmp_path, sensor_toml("th1", "A1", 60))
    readings = _day(6, lambda h, m: 26.0 if h == 8 and m >= 2 else 20.0)  # 08:00, 08:01 20 ℃; the rest of 8h 26 ℃
    readings += _day(7, lambda h, m: 19.5 if h == 7 else 21.0, skip=lambda h, m: h == 8 and m < 20)  # 07:59, 08:20
    readings += _day(8, lambda h, m: 20.0, skip=lambda h, m: 13 <= h < 15)  # no reading near 14:00
    readings += _day(9, lambda h, m: 25.0 if h == 8 else 20.0, skip=lambda h, m: 13 <= h < 15)  # 08:00 out, 14:00 none
    write(config, readings)
    return config


def test_the_duty_value_is_the_reading_nearest_the_duty_time_not_the_hours_mean(tmp_path: Path) -> None:
    config = _site(tmp_path)
    checks = {(c.date.day, c.time): c for c in report(config, dt.date(2025, 1, 6), dt.date(2025, 1, 9)).rooms[0]
              .duty.checks}
    first = checks[(6, "08:00")]
    assert first.present and first.temperature == 20.0 and first.humidity == 50.0  # the hour's mean was 25.8
    nearest_before = checks[(7, "08:00")]  # 07:59 (1 min) is nearer than 08:20, and in another hour
    assert nearest_before.present and nearest_before.temperature == 19.5
    assert not checks[(8, "14:00")].present and checks[(8, "14:00")].temperature is None


def test_a_day_missing_a_duty_reading_is_not_within_limits(tmp_path: Path) -> None:
    config = _site(tmp_path)
    store = SqliteStore(config.resolve(config.storage.sqlite_path), tz=TZ, readonly=True)
    try:
        register = build_register(config, store, "2025-01", rooms=["A1"], now_ms=local_ms(2025, 1, 9, 23))
    finally:
        store.close()
    rows = {row.date.day: row for row in register.sheets[0].rows}
    assert (rows[6].within, rows[6].missing) == (True, ())  # 08:00 20.0 ℃ in band (the mean said 否)
    assert (rows[7].within, rows[7].missing) == (True, ())
    assert (rows[8].within, rows[8].missing) == (None, ("14:00",))  # not 是 with a reading missing
    assert (rows[9].within, rows[9].missing) == (False, ("14:00",))  # one outside the band: 否
    assert (rows[5].within, rows[5].missing) == (None, ("08:00", "14:00"))  # before the sensor was installed
    assert (rows[10].within, rows[10].missing) == (None, ())  # after the register was made: not expected yet
