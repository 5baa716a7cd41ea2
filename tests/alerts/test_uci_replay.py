"""Replaying the real UCI occupancy data (Mons, February 2015) against the paper profile."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.replay import profile_config, read_readings_csv, run_replay
from archmon.timeutil import parse_iso_ms

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "uci-occupancy"
FILES = ("datatest.txt", "datatraining.txt", "datatest2.txt")
TZ = ZoneInfo("Europe/Brussels")

pytestmark = pytest.mark.skipif(not (DATA / FILES[0]).is_file(), reason="UCI data not present")


def convert(target: Path) -> None:
    """The three UCI files as one replay CSV (the first column is a quoted row number)."""
    with target.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["ts", "sensor", "quantity", "value"])
        for name in FILES:
            with (DATA / name).open(newline="") as handle:
                rows = csv.reader(handle)
                next(rows)
                for row in rows:
                    ts = row[1].strip().replace(" ", "T")
                    writer.writerow([ts, "office", "temperature", row[2]])
                    writer.writerow([ts, "office", "humidity", row[3]])


@pytest.fixture(scope="module")
def transitions(tmp_path_factory: pytest.TempPathFactory) -> list:
    folder = tmp_path_factory.mktemp("uci")
    convert(folder / "uci.csv")
    rows = read_readings_csv(folder / "uci.csv", TZ)
    config = profile_config("paper", rows, TZ.key)
    assert config.sensors[0].expected_interval_s == pytest.approx(60, abs=1)
    return run_replay(rows, config)


def test_humidity_low_alert(transitions: list) -> None:
    low = [t for t in transitions if t.rule == "band" and t.quantity == "humidity" and t.detail == "low"]
    assert [t.state for t in low] == ["pending", "active"]  # RH 16-39 %: fires once, never clears
    assert low[0].value < 45


def test_stale_alert_across_each_gap(transitions: list) -> None:
    gaps = [("2015-02-04T10:43", "2015-02-04T17:51"), ("2015-02-10T09:33", "2015-02-11T14:48")]
    active = [t.ts_ms for t in transitions if t.rule == "stale" and t.state == "active"]
    assert len(active) == 2
    for ts, (start, end) in zip(active, gaps, strict=True):
        assert parse_iso_ms(start, TZ) < ts < parse_iso_ms(end, TZ)


def test_no_alert_storm(transitions: list) -> None:
    open_alerts: dict[tuple, set[int]] = defaultdict(set)
    for t in transitions:
        key = (t.rule, t.sensor, t.quantity, t.detail if t.rule == "band" else "")
        if t.state in ("closed", "cancelled"):
            open_alerts[key].discard(t.alert)
        else:
            open_alerts[key].add(t.alert)
        assert len(open_alerts[key]) <= 1, f"two open alerts for {key}"
    assert len({t.alert for t in transitions}) <= 12
