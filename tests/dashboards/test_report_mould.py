"""Mould-risk exposure is the longest run of one sensor's consecutive hours in the zone: a second, dry sensor
in the room does not reset it, a data gap ends it, and a room without data has none (review findings 2, 3)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from archmon.domain import Reading
from tests.dashboards.small_site import local_ms, report, sensor_toml, small_site, write

FIRST, LAST = dt.date(2025, 1, 6), dt.date(2025, 1, 8)


def _humid(sensor: str, lo: int, hi: int, rh: float, offset_ms: int = 0) -> list[Reading]:
    out = []
    for ts in range(lo, hi, 60_000):
        out += [Reading(sensor, "temperature", 20.0, ts + offset_ms, "A1"),
                Reading(sensor, "humidity", rh, ts + offset_ms, "A1")]
    return out


def test_a_dry_second_sensor_does_not_reset_a_humid_ones_exposure(tmp_path: Path) -> None:
    config = small_site(tmp_path, sensor_toml("th1", "A1", 60) + sensor_toml("th2", "A1", 60))
    lo, hi = local_ms(2025, 1, 6), local_ms(2025, 1, 9)
    write(config, _humid("th1", lo, hi, 70.0) + _humid("th2", lo, hi, 55.0, 1000))
    p = report(config, FIRST, LAST).rooms[0].preservation
    assert p.mould_max_exposure_h == pytest.approx(72.0)  # one list of both sensors' hours said 1.0
    assert p.hours == 2 * 72


def test_a_data_gap_ends_the_run_and_no_data_is_no_figure(tmp_path: Path) -> None:
    config = small_site(tmp_path, sensor_toml("th1", "A1", 60) + sensor_toml("th2", "A2", 60))
    spells = _humid("th1", local_ms(2025, 1, 6, 0), local_ms(2025, 1, 6, 10), 70.0)
    spells += _humid("th1", local_ms(2025, 1, 8, 0), local_ms(2025, 1, 8, 10), 70.0)  # nothing in between
    write(config, spells)
    rooms = {r.id: r for r in report(config, FIRST, LAST).rooms}
    assert rooms["A1"].preservation.mould_max_exposure_h == pytest.approx(10.0, abs=0.05)  # carried over: 20.03
    empty = rooms["A2"].preservation
    assert empty.hours == 0 and empty.mould_max_exposure_h is None  # not "0 hours" for a room without data
