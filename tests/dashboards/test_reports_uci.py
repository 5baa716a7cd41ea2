"""The compliance report on real data: the three UCI occupancy files (Mons, February 2015) imported with
``archmon import --tz Europe/Brussels`` (the import-only sensor of a ``paper`` room), reported for
2015-02-02..2015-02-18, and checked against an independent calculation from the raw CSV written here. The
same report after raw retention deleted every raw reading, and after the readings arrived shuffled with
replayed duplicates (through the store's write API), must say exactly the same."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
import os
import random
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.cli import main
from archmon.config import Config, load_config
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from dashboards.reports import ReportRequest, build_report, report_to_json

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ARCHMON_SHARED_DATA") or ROOT.parent / "shared" / "data") / "uci-occupancy"
FILES = ("datatest.txt", "datatraining.txt", "datatest2.txt")
TZ = ZoneInfo("Europe/Brussels")
CAP_MS = 120_000  # 2 × the expected interval of 60 s
REQUEST = ReportRequest(dt.date(2015, 2, 2), dt.date(2015, 2, 18), lang="en", generated_by="test",
                        now_ms=1_500_000_000_000)


@pytest.fixture(scope="module", autouse=True)
def _data_present() -> None:
    if (DATA / FILES[0]).is_file():
        return
    message = f"UCI data missing at {DATA} (set ARCHMON_SHARED_DATA to the shared/data folder)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def raw_rows() -> list[tuple[int, float, float]]:
    """``(ts_ms, temperature, humidity)`` of the three files, in time order (local times, Brussels)."""
    out = []
    for name in FILES:
        with (DATA / name).open(newline="") as handle:
            rows = csv.reader(handle)
            next(rows)  # the header is one name shorter than the rows: the first column is a row number
            for row in rows:
                local = dt.datetime.strptime(row[1].strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ)
                out.append((round(local.timestamp() * 1000), float(row[2]), float(row[3])))
    return sorted(out)


def site(tmp_path: Path) -> Config:
    path = tmp_path / "archmon.toml"
    path.write_text(
        '[site]\nname = "Mons office"\ntimezone = "Europe/Brussels"\nlanguage = "en"\n'
        '[storage]\nsqlite_path = "uci.db"\n[http]\nenabled = false\n'
        '[[rooms]]\nid = "office"\nname_en = "Office"\nprofile = "paper"\n'
        '[[sensors]]\nid = "uci"\nroom = "office"\nsource = "import"\nexpected_interval_s = 60\n', encoding="utf-8")
    return load_config(path)


def load(store: SqliteStore, rows: list[tuple[int, float, float]], *, shuffle: bool = False) -> None:
    """The readings through ``SqliteStore.write``, in batches of 500 (shuffled with replays: any order)."""
    readings = [Reading("uci", q, v, ts, "office") for ts, t, rh in rows for q, v in (("temperature", t),
                                                                                       ("humidity", rh))]
    if shuffle:
        readings += random.Random(9).sample(readings, 3000)  # idempotent replays
        random.Random(7).shuffle(readings)
    for start in range(0, len(readings), 500):
        store.write(Batch(readings=readings[start:start + 500]))


@pytest.fixture(scope="module")
def uci(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, SqliteStore, list[tuple[int, float, float]]]:
    folder = tmp_path_factory.mktemp("uci-report")
    config = site(folder)
    rows = raw_rows()
    files = [str(DATA / name) for name in FILES]
    assert main(["import", *files, "--sensor", "uci", "--tz", "Europe/Brussels", "-c", str(config.path)]) == 0
    store = SqliteStore(config.resolve(config.storage.sqlite_path), tz=TZ)
    assert store.count_readings("uci", "temperature") == store.count_readings("uci", "humidity") == len(rows)
    assert sorted(store.series("uci", "temperature", 0, 2**62)) == [(ts, t) for ts, t, _ in rows]
    yield config, store, rows
    store.close()


def _weights(rows: list[tuple[int, float, float]], end_ms: int) -> list[int]:
    """Independent coverage: each reading covers until the next, at most the cap (the last one: the cap)."""
    return [min(CAP_MS, (rows[i + 1][0] if i + 1 < len(rows) else end_ms) - rows[i][0]) for i in range(len(rows))]


def test_completeness_reflects_the_two_real_gaps(uci: tuple) -> None:
    config, store, rows = uci
    report = build_report(config, store, REQUEST)
    (room,) = report.rooms
    end = report.period.end_ms
    weights = _weights(rows, end)
    expected_s = (end - rows[0][0]) / 1000  # the sensor counts from its first reading (its installation)
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(rows))[-2:]
    assert 6.5 * 3600 < gaps[0] / 1000 < 7.5 * 3600 and 28.5 * 3600 < gaps[1] / 1000 < 29.5 * 3600
    for quantity in ("temperature", "humidity"):
        stats = room.quantities[quantity]
        assert stats.readings == len(rows)
        assert stats.expected_s == pytest.approx(expected_s)
        assert stats.covered_s == pytest.approx(sum(weights) / 1000, abs=60)  # ≤ one 10 s slot per gap edge
        missing_h = (stats.expected_s - stats.covered_s) / 3600
        tail_h = (end - rows[-1][0] - CAP_MS) / 3_600_000  # no data after 2015-02-18 09:19
        assert missing_h == pytest.approx(sum(g - CAP_MS for g in gaps) / 3_600_000 + tail_h, abs=0.05)
        assert stats.completeness_pct == pytest.approx(100 * sum(weights) / 1000 / expected_s, abs=0.01)
        assert stats.days_in_period == stats.days_with_data == 17  # neither gap swallows a whole day
    # per day, independently: covered intervals [t, t + w) and the expected time, split at local midnights
    midnights = [round(dt.datetime.combine(REQUEST.from_date + dt.timedelta(days=i), dt.time(0), tzinfo=TZ)
                       .timestamp() * 1000) for i in range(18)]
    covered = [0] * 17
    for (ts, _, _), w in zip(rows, weights, strict=True):
        for i in range(17):
            covered[i] += max(0, min(ts + w, midnights[i + 1]) - max(ts, midnights[i]))
    expected = [midnights[i + 1] - max(midnights[i], rows[0][0]) for i in range(17)]
    for i, day in enumerate(room.daily):
        assert day.quantities["temperature"].completeness_pct == pytest.approx(100 * covered[i] / expected[i],
                                                                               abs=0.05)
    short = [day.date.isoformat() for day in room.daily if not day.quantities["temperature"].sufficient]
    assert short == ["2015-02-10", "2015-02-11", "2015-02-18"]  # the 29 h gap, and the last morning
    assert room.quantities["temperature"].days_sufficient == 14


def test_humidity_is_never_in_the_paper_band_and_its_excursions_are_split_by_the_gaps(uci: tuple) -> None:
    config, store, rows = uci
    room = build_report(config, store, REQUEST).rooms[0]
    rh = room.quantities["humidity"]
    assert max(r[2] for r in rows) < 45
    assert rh.in_band_pct == 0 and rh.in_band_s == 0
    assert [e.side for e in rh.excursions] == ["low"] * 3  # one stretch of data each: the two gaps split it
    assert rh.excursions[0].start_ms == rows[0][0] and rh.excursions[-1].end_ms == rows[-1][0]
    assert min(e.extreme for e in rh.excursions) == min(r[2] for r in rows)
    assert sum(e.readings for e in rh.excursions) == len(rows)
    assert sum(e.duration_s for e in rh.excursions) == pytest.approx(rh.covered_s, rel=1e-6)


def test_temperature_in_band_share_and_daily_ranges_match_an_independent_calculation(uci: tuple) -> None:
    config, store, rows = uci
    report = build_report(config, store, REQUEST)
    room = report.rooms[0]
    weights = _weights(rows, report.period.end_ms)
    inside = sum(w for w, (_, t, _) in zip(weights, rows, strict=True) if 14 <= t <= 24)
    share = 100 * inside / sum(weights)
    near = 100 * sum(w for w, (_, t, _) in zip(weights, rows, strict=True) if abs(t - 24) < 0.05) / sum(weights)
    stats = room.quantities["temperature"]
    assert 0 < share < 100
    # the summaries judge values at 0.1 ℃ (24.04 is in band) and share an hour's covered time equally among
    # its readings: the difference is bounded by the time spent within 0.05 ℃ of the limit, plus 0.1 pp
    assert stats.in_band_pct == pytest.approx(share, abs=near + 0.1)
    per_day: dict[dt.date, list[float]] = defaultdict(list)
    for ts, t, _ in rows:
        per_day[dt.datetime.fromtimestamp(ts / 1000, TZ).date()].append(t)
    for day in room.daily:
        values = per_day.get(day.date)
        figures = day.quantities["temperature"]
        if not values:
            assert figures.readings == 0 and figures.range is None
            continue
        assert (figures.readings, figures.min, figures.max) == (len(values), min(values), max(values))
        assert figures.range == pytest.approx(max(values) - min(values), abs=1e-9)
        assert figures.mean == pytest.approx(sum(values) / len(values), abs=1e-3)
        assert figures.stable is (None if not figures.sufficient else max(values) - min(values) <= 2.0 + 1e-9)
    assert stats.min == min(r[1] for r in rows) and stats.max == max(r[1] for r in rows)
    assert stats.days_stable == sum(bool(d.quantities["temperature"].stable) for d in room.daily)


def test_preservation_metrics_and_duty_times(uci: tuple) -> None:
    config, store, rows = uci
    room = build_report(config, store, REQUEST).rooms[0]
    p = room.preservation
    assert p.hours > 300 and p.twpi_years is not None and p.pi_min_years <= p.twpi_years <= p.pi_max_years
    assert p.mould_max_exposure_h == 0  # RH below 40 %
    assert p.emc_max_pct < 9 and p.emc_mechanical in ("ok", "risk") and p.emc_corrosion in ("good", "ok")
    assert room.duty.expected == 17 * 2
    logged = {(c.date, c.time) for c in room.duty.checks if c.present}
    for check in room.duty.checks:  # independent: any raw reading within 30 minutes of the duty time
        near = any(abs(ts - check.scheduled_ms) <= 30 * 60_000 for ts, _, _ in rows)
        assert ((check.date, check.time) in logged) is near, check
    assert room.duty.missing == sum(not c.present for c in room.duty.checks) > 0
    assert all((c.temperature is None) is (not c.present) for c in room.duty.checks)


def test_the_report_is_the_same_after_raw_retention_and_after_shuffled_arrival(uci: tuple, tmp_path: Path) -> None:
    config, store, rows = uci
    before = report_to_json(build_report(config, store, REQUEST))
    other = SqliteStore(tmp_path / "shuffled.db", tz=TZ)
    try:
        load(other, rows, shuffle=True)
        assert other.count_readings() == 2 * len(rows)
        assert report_to_json(build_report(config, other, REQUEST)) == before
        deleted = other.apply_retention(REQUEST.now_ms, raw_retention_days=30, quarantine_retention_days=0)
        assert deleted["readings"] == 2 * len(rows) and other.count_readings() == 0
        assert report_to_json(build_report(config, other, REQUEST)) == before
    finally:
        other.close()
    assert not math.isnan(before["rooms"][0]["quantities"]["temperature"]["in_band_pct"])
