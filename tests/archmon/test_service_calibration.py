"""A calibration recorded with ``archmon calibration add`` while ``archmon run``'s service runs: the service's
own pipeline takes it within a second and corrects readings taken from the moment it applies from, through
a reload and a restart; earlier readings stay as stored; ``archmon calibration list`` shows the history in
the site's zone and ``archmon calibration raw`` gives every stored reading back uncorrected. (A real
Service on a real SQLite file; messages enter through the sources' own sink.)"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from archmon.app import Service
from archmon.cli import main
from archmon.config import load_config
from archmon.domain import RawMessage
from archmon.timeutil import now_ms, to_iso
from collector.store import SqliteStore
from tests.archmon.sites import line_site
from tests.fixtures.waiting import wait_for

MIN = 60_000


def _store(service: Service, received_ms: int, temperature: float = 20.0) -> None:
    message = RawMessage("bus", "line/no-port", f"t0 T={temperature}".encode(), received_ms)
    assert service._on_messages([message]).result(30) is not None


def _stored(db: Path) -> list[tuple[int, float]]:
    store = SqliteStore(db, tz=load_config(db.parent / "archmon.toml").site.tz, readonly=True)
    try:
        return store.series("t0", "temperature", 0, now_ms() + 3_600_000)
    finally:
        store.close()


def test_a_recorded_calibration_reaches_the_running_service_and_survives_reload_and_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = line_site(tmp_path, temperature=1, smoke=0)
    cli = ["--config", str(path), "calibration"]
    service = Service(load_config(path))
    service.start()
    try:
        before = now_ms() - 5 * MIN
        _store(service, before)
        today = dt.datetime.now(service.config.site.tz).date().isoformat()
        assert main([*cli, "add", "t0", "--date", today, "--certificate", "JL-2026-1201", "--offset-temperature",
                     "0.3", "--by", "王工"]) == 0
        added = capsys.readouterr().out
        assert "calibration 1: sensor t0" in added and "+0.3 ℃" in added
        wait_for(lambda: service.corrections.book().version == 1, "the service taking the new record")
        (record,) = json.loads(_cli_out(capsys, [*cli, "list", "t0", "--format", "json"]))
        applies = record["applies_from_ms"]
        assert record["applies_from_at"].endswith("+08:00") and record["by"] == "王工"
        assert applies >= record["recorded_ms"] + 10 * MIN
        _store(service, applies - MIN)  # taken before it applies, arriving after it was recorded
        _store(service, applies + MIN)
        assert service.reload().applied
        _store(service, applies + 2 * MIN)
    finally:
        assert service.stop().complete
    again = Service(load_config(path))
    again.start()
    try:
        _store(again, applies + 3 * MIN)
    finally:
        assert again.stop().complete
    assert [v for _, v in _stored(again.db_path)] == [20.0, 20.0, 20.3, 20.3, 20.3]

    lines = _cli_out(capsys, [*cli, "raw", "t0", "--from", to_iso(before - MIN), "--to", to_iso(applies + 4 * MIN),
                              "--format", "jsonl"]).splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["stored"], r["correction"], r["record"], r["raw"], r["exact"]) for r in rows] == [
        (20.0, "none", None, 20.0, True), (20.0, "none", None, 20.0, True),
        *[(20.3, "record", 1, 20.0, True)] * 3]
    assert rows[0]["ts"].endswith("+08:00")
    listing = _cli_out(capsys, [*cli, "list"]).splitlines()
    assert listing[0].split()[:4] == ["编号", "仪器", "校准日期", "证书编号"] and "JL-2026-1201" in listing[1]
    assert listing[1].count("+08:00") == 2 and "王工" in listing[1]
    assert "calibrated" in _cli_out(capsys, [*cli, "list", "--lang", "en"]).splitlines()[0]
    status = json.loads(_cli_out(capsys, [*cli, "status", "--format", "json"]))
    assert [(s["instrument"], s["certificate"], s["status"], s["overdue"]) for s in status] == [
        ("t0", "JL-2026-1201", "ok", False)]


def test_unknown_sensors_future_dates_and_offsets_of_unmeasured_quantities_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = line_site(tmp_path, temperature=1, smoke=1)
    cli = ["--config", str(path), "calibration", "add"]
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    cases = [
        ([*cli, "t9", "--date", "2026-01-05", "--certificate", "C1"], "unknown sensor 't9'", "t0, smoke0"),
        ([*cli, "t0", "--date", tomorrow, "--certificate", "C1"], f"--date {tomorrow} is after today", ""),
        ([*cli, "t0", "--date", "2026-13-01", "--certificate", "C1"], "--date must be a date YYYY-MM-DD", ""),
        ([*cli, "smoke0", "--date", "2026-01-05", "--certificate", "C1", "--offset-temperature", "0.2"],
         "measures no temperature", ""),
        ([*cli, "t0", "--date", "2026-01-05", "--certificate", "C1", "--offset-temperature", "3e1"],
         "not a correction within ±5", ""),
        ([*cli, "t0", "--date", "2026-01-05", "--certificate", "  "], "needs a certificate number", ""),
    ]
    for argv, message, also in cases:
        assert main(argv) in (1, 2), argv
        err = capsys.readouterr().err
        assert message in err and also in err, (argv, err)
    assert json.loads(_cli_out(capsys, ["--config", str(path), "calibration", "list", "--format", "json"])) == []
    assert main(["--config", str(path), "calibration", "list", "t9"]) == 1
    assert "unknown sensor 't9'" in capsys.readouterr().err


def _cli_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out
