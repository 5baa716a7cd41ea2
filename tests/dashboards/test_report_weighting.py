"""Time in band and excursion durations weigh each reading by the time it covers, not one share of its hour:
readings sampled at different rates within one hour (report-on-change loggers, a logger switched from 5
minutes to 10 seconds) against an independent calculation from the raw readings."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from archmon.domain import Reading
from tests.dashboards.small_site import local_ms, report, sensor_toml, small_site, write

DAY = dt.date(2025, 1, 6)
HIGH = 24.0  # paper: 14–24 ℃


def truth(points: list[tuple[int, float]], cap_ms: int, lo: int, hi: int) -> tuple[int, int]:
    """``(covered ms, covered ms out of band)`` in ``[lo, hi)``: each reading covers until the next, at most
    ``cap_ms`` (docs/reports.md), computed from the raw readings."""
    covered = out = 0
    points = sorted(points)
    for i, (ts, value) in enumerate(points):
        end = min(ts + cap_ms, points[i + 1][0] if i + 1 < len(points) else ts + cap_ms, hi)
        span = max(0, end - max(ts, lo))
        covered += span
        out += span if value > HIGH else 0
    return covered, out


def _site(tmp_path: Path, points: list[tuple[int, float]]):
    config = small_site(tmp_path, sensor_toml("th2", "A2", 300))
    write(config, [Reading("th2", "temperature", v, ts, "A2") for ts, v in points])
    return report(config, DAY, DAY, ("A2",)).rooms[0].quantities["temperature"]


def _hourly(hour: int, special: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """A day of readings every 5 minutes at 20 ℃, hour ``hour`` replaced by ``special`` (seconds, value)."""
    day0 = local_ms(2025, 1, 6)
    points = [(day0 + h * 3_600_000 + m * 60_000, 20.0) for h in range(24) if h != hour for m in range(0, 60, 5)]
    return points + [(day0 + hour * 3_600_000 + s * 1000, v) for s, v in special]


def test_slow_out_of_band_readings_beside_fast_in_band_ones_count_all_the_time_they_cover(tmp_path: Path) -> None:
    # 10:00–10:55 out of band, one reading / 5 min; 10:55–11:00 in band, one / 10 s: 3300 s out of band
    points = _hourly(10, [(m * 60, 25.0) for m in range(0, 55, 5)] + [(s, 20.0) for s in range(3300, 3600, 10)])
    stats = _site(tmp_path, points)
    assert stats.covered_s == 86400
    assert stats.in_band_s == pytest.approx(86400 - 3300)  # one share per reading said 85434 s (98.88 %)
    assert stats.in_band_pct == pytest.approx(100 * (86400 - 3300) / 86400, abs=1e-3)
    (excursion,) = stats.excursions
    assert excursion.duration_s == pytest.approx(3300)
    assert (excursion.start_ms, excursion.end_ms) == (local_ms(2025, 1, 6, 10), local_ms(2025, 1, 6, 10, 50))


def test_a_burst_of_out_of_band_readings_counts_only_its_own_minutes(tmp_path: Path) -> None:
    # 10:00–10:05 out of band every 10 s (report on change), then one in-band reading / 5 min
    points = _hourly(10, [(s, 25.0) for s in range(0, 300, 10)] + [(m * 60, 20.0) for m in range(5, 60, 5)])
    stats = _site(tmp_path, points)
    (excursion,) = stats.excursions
    assert excursion.end_ms - excursion.start_ms == 290_000
    assert excursion.duration_s == pytest.approx(300)  # one share per reading said 2634 s
    assert stats.in_band_s == pytest.approx(86400 - 300)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_mixed_sampling_rates_match_the_raw_calculation(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    day0, day1 = local_ms(2025, 1, 6), local_ms(2025, 1, 7)
    points, ts = [], day0
    while ts < day1:  # stretches of 2–90 minutes, each at its own rate and on one side of the band
        rate = rng.choice((10_000, 30_000, 60_000, 300_000, 600_000))
        value = rng.choice((20.0, 20.0, 25.0, 24.5))
        end = ts + rng.randint(2, 90) * 60_000
        if rng.random() < 0.1:  # a gap longer than the cap
            ts = end
            continue
        while ts < min(end, day1):
            points.append((ts, value))
            ts += rate
    stats = _site(tmp_path, points)
    covered, out = truth(points, 600_000, day0, day1)  # readings on 10-second slots: exact
    assert stats.covered_s * 1000 == covered
    assert (stats.covered_s - stats.in_band_s) * 1000 == pytest.approx(out)
    assert sum(e.duration_s for e in stats.excursions) * 1000 == pytest.approx(out)
    for e in stats.excursions:
        assert e.duration_s * 1000 <= e.end_ms - e.start_ms + 600_000


def test_hours_summarised_before_bins_kept_their_slots_fall_back_to_one_share_per_reading(tmp_path: Path) -> None:
    import sqlite3

    points = _hourly(10, [(m * 60, 25.0) for m in range(0, 55, 5)] + [(s, 20.0) for s in range(3300, 3600, 10)])
    config = small_site(tmp_path, sensor_toml("th2", "A2", 300))
    write(config, [Reading("th2", "temperature", v, ts, "A2") for ts, v in points])
    with sqlite3.connect(config.resolve(config.storage.sqlite_path)) as conn:  # as migration 6 leaves an hour
        conn.execute("UPDATE summary_hour_bins SET minutes = 0")  # whose raw
        conn.execute("UPDATE summary_hour SET first_ms = NULL, first_value = NULL, last_ms = NULL,"  # readings
                     " last_value = NULL")  # retention had deleted
    room = report(config, DAY, DAY, ("A2",)).rooms[0]
    stats = room.quantities["temperature"]
    assert stats.in_band_s == pytest.approx(86400 - 3600 * 11 / 41, abs=1)  # 11 of the hour's 41 readings out
    assert stats.excursions[0].duration_s == pytest.approx(3600 * 11 / 41, abs=1)
    check = room.duty.checks[0]  # 08:00: logged (the slots say so), its value not kept
    assert check.present and check.temperature is None
