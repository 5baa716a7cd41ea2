"""``archmon report`` / ``archmon register`` with a destination that cannot be written: a clear error (exit 2)
before anything is recorded, no traceback, no audit entry for a file that does not exist (review finding 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archmon.cli import main
from archmon.domain import Reading
from dashboards.reports.integrity import find_reports
from tests.dashboards.small_site import local_ms, sensor_toml, small_site, write


@pytest.fixture
def site(tmp_path: Path):
    config = small_site(tmp_path, sensor_toml("th1", "A1", 300))
    write(config, [Reading("th1", q, v, local_ms(2025, 1, 6) + i * 300_000, "A1")
                   for i in range(288) for q, v in (("temperature", 20.0), ("humidity", 50.0))])
    return config


def _records(config) -> int:
    return len(find_reports(config.resolve(config.storage.sqlite_path)))


@pytest.mark.parametrize("command", [["report", "--from", "2025-01-06", "--to", "2025-01-06", "--format", "csv"],
                                     ["register", "--month", "2025-01"]])
def test_an_unwritable_destination_is_a_clear_error_and_records_nothing(
        site, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    cfg = ["--config", str(site.path)]
    for bad in (tmp_path / "no-such-folder" / "x.out", tmp_path):  # a missing folder; a folder
        assert main([*command, *cfg, "--out", str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"--out {bad}" in err and "Traceback" not in err
        assert _records(site) == 0  # no audit entry for a file that was never written
    good = tmp_path / "made.out"
    assert main([*command, *cfg, "--out", str(good)]) == 0
    assert good.stat().st_size > 0 and _records(site) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []  # the temporary file is gone
    assert main(["report", "verify", str(good), *cfg]) == 0


def test_standard_output_still_works(site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--from", "2025-01-06", "--to", "2025-01-06", "--format", "json", "--out", "-",
                 "--config", str(site.path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "archmon-compliance-report" and data["period"]["from"] == "2025-01-06"
    assert _records(site) == 1
