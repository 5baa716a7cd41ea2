"""Import review fixes: a newest-first file keeps both passes of the repeated autumn hour (finding 5), two
rows of one file giving one instant different values are rejected, not "already stored"; semicolon HOBO
exports, German HOBO headers and ``--delimiter`` (finding 6)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.cli import main
from archmon.config import load_config
from collector.store import SqliteStore

BERLIN = ZoneInfo("Europe/Berlin")
SITE = """[site]
name = "Archiv"
timezone = "Europe/Berlin"
language = "en"
[storage]
sqlite_path = "archmon.db"
[http]
enabled = false
[[rooms]]
id = "stack-2"
profile = "paper"
[[sensors]]
id = "logger-1"
room = "stack-2"
source = "import"
expected_interval_s = 900
"""


def _config(folder: Path) -> Path:
    path = folder / "archmon.toml"
    path.write_text(SITE, encoding="utf-8")
    return path


def _stored(config_path: Path) -> list[tuple[int, float]]:
    config = load_config(config_path)
    store = SqliteStore(config.resolve(config.storage.sqlite_path), tz=config.site.tz, readonly=True)
    try:
        return [(ts, value) for ts, value in store.series("logger-1", "temperature", 0, 2**62)]
    finally:
        store.close()


def _autumn_rows() -> list[tuple[str, float]]:
    """Berlin wall times every 15 min through 27.10.2024 01:00–04:45, 02:00–02:45 twice, values rising."""
    start = dt.datetime(2024, 10, 26, 23, 0, tzinfo=dt.UTC)
    rows = []
    for i in range(20):
        local = (start + dt.timedelta(minutes=15 * i)).astimezone(BERLIN)
        rows.append((local.strftime("%d.%m.%Y %H:%M:%S"), round(17.1 + i / 10, 1)))
    return rows


@pytest.mark.parametrize("newest_first", [False, True])
def test_both_passes_of_the_repeated_hour_are_kept_whatever_the_files_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], newest_first: bool) -> None:
    rows = _autumn_rows()
    body = [f"{n};{stamp};{str(v).replace('.', ',')};47,0" for n, (stamp, v) in enumerate(rows, start=1)]
    if newest_first:
        body.reverse()
    path = tmp_path / "testo-rev.csv"  # testo on a German PC: UTF-16 with a BOM, ';', decimal comma
    path.write_text("testo 174H;Seriennummer 43215678\nNr.;Datum/Zeit;Temperatur [°C];Feuchte [%rF]\n"
                    + "\n".join(body) + "\n", encoding="utf-16")
    config = _config(tmp_path)
    assert main(["import", str(path), "--sensor", "logger-1", "-c", str(config)]) == 0
    out = capsys.readouterr()
    assert "40 offered, 40 stored, 0 already stored, 0 rejected" in out.out
    assert ("newest first" in out.err) == newest_first
    start = round(dt.datetime(2024, 10, 26, 23, 0, tzinfo=dt.UTC).timestamp() * 1000)
    # every quarter hour from 23:00 UTC, each with its own value: 00:00–00:45 UTC (the first pass) included
    assert _stored(config) == [(start + i * 900_000, round(17.1 + i / 10, 1)) for i in range(20)]


def test_two_rows_giving_one_instant_different_values_are_rejected(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "set-back.csv"  # the logger's clock was set back: 10:15 again, with another value
    path.write_text("Datum/Zeit;Temperatur [°C]\n05.03.2024 10:00;20,0\n05.03.2024 10:15;20,5\n"
                    "05.03.2024 10:15;22,0\n05.03.2024 10:30;20,5\n05.03.2024 10:30;20,5\n", encoding="utf-8")
    config = _config(tmp_path)
    assert main(["import", str(path), "--sensor", "logger-1", "-c", str(config)]) == 1
    captured = capsys.readouterr()
    # the identical repeated 10:30 row is a duplicate; the conflicting 10:15 row is a rejection naming both lines
    assert "5 offered, 3 stored, 1 already stored, 1 rejected" in captured.out
    assert "set-back.csv line 4" in captured.err and "line 3 of this file gives the same instant" in captured.err
    assert [v for _, v in _stored(config)] == [20.0, 20.5, 20.5]


HOBO_SEMI = ('"Plot Title: 1234"\n"#";"Date Time, GMT+01:00";"Temp, °C (LGR S/N: 1234, SEN S/N: 1234)";'
             '"RH, % (LGR S/N: 1234, SEN S/N: 1234)"\n0;10/27/24 01:00:00 AM;17,0;50,0\n'
             "1;10/27/24 01:15:00 AM;17,1;50,1\n2;10/28/24 01:30:00 PM;17,2;50,2\n")
HOBO_DE = ('"Plot Title: 1234"\n"#";"Datum Zeit, GMT+01:00";"Temp., °C (LGR S/N: 1234, SEN S/N: 1234)";'
           '"RH, % (LGR S/N: 1234, SEN S/N: 1234)"\n0;27.10.24 01:00:00;17,0;50,0\n1;27.10.24 01:15:00;17,1;50,1\n')


@pytest.mark.parametrize(("name", "text", "encoding", "first_utc"), [
    ("hobo-semi.csv", HOBO_SEMI, "utf-8", dt.datetime(2024, 10, 27, 0, 0, tzinfo=dt.UTC)),
    ("hobo-de.csv", HOBO_DE, "utf-16", dt.datetime(2024, 10, 27, 0, 0, tzinfo=dt.UTC)),  # with a BOM
    ("hobo-de-be.csv", HOBO_DE, "utf-16-be", dt.datetime(2024, 10, 27, 0, 0, tzinfo=dt.UTC)),  # without one
])
def test_semicolon_and_german_hobo_exports_are_recognised(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          name: str, text: str, encoding: str,
                                                          first_utc: dt.datetime) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    config = _config(tmp_path)
    assert main(["import", str(path), "--sensor", "logger-1", "-c", str(config)]) == 0
    out = capsys.readouterr()
    assert "HOBOware export" in out.err and "(from the header)" in out.err  # GMT+01:00 of the header
    stored = _stored(config)
    assert stored[0] == (round(first_utc.timestamp() * 1000), 17.0) and stored[1][1] == 17.1


def test_delimiter_says_what_the_cells_cannot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two-columns.csv"  # ',' and ';' both split header and rows in two: ',' would be guessed
    path.write_text("Zeit;Temp, °C\n05.03.2024 10:00;20,5\n05.03.2024 10:15;20,6\n", encoding="utf-8")
    config = _config(tmp_path)
    args = ["import", str(path), "--sensor", "logger-1", "-c", str(config), "--columns", "ts=1,temperature=2"]
    assert main([*args, "--delimiter", "semicolon"]) == 0
    assert "2 offered, 2 stored" in capsys.readouterr().out
    assert [v for _, v in _stored(config)] == [20.5, 20.6]
