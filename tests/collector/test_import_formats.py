"""Recognising logger exports and reading their rows: every format detected from its header, °F converted,
the header's zone winning over --tz, decimal commas, Windows-1252, date orders, clock changes, --columns, and a
clear refusal (file, line, what was expected) for a file nothing recognises. Real files: the UCI data set
and the synthetic samples in ``import_samples/`` (see its README)."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import pkgutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import collector.importer
from archmon.config import Config, parse_config
from collector.backfill import HistoricalReading, UnreadableRow
from collector.importer import FORMATS, ImportOptions, ImportRefused, parse_columns, plan_import
from collector.importer.rows import RowCounts, read_rows
from collector.importer.timestamps import TimeReader

SAMPLES = Path(__file__).parent / "import_samples"
ROOT = Path(__file__).resolve().parents[2]
UCI = Path(os.environ.get("ARCHMON_SHARED_DATA") or ROOT.parent / "shared" / "data") / "uci-occupancy"
BERLIN = ZoneInfo("Europe/Berlin")
NOT_FORMATS = {"cli", "columns", "formats", "layout", "progress", "rows", "run", "table", "timestamps"}


def config() -> Config:
    return parse_config({"site": {"timezone": "Asia/Shanghai"}, "rooms": [{"id": "r"}],
                         "sensors": [{"id": "s", "room": "r", "source": "import"}]})


def readings(path: Path, **options: object) -> tuple[list[HistoricalReading | UnreadableRow], RowCounts, object]:
    plan = plan_import(config(), path, ImportOptions(sensor="s", **options))  # type: ignore[arg-type]
    counts = RowCounts()
    rows = list(read_rows(plan.file, plan.layout, TimeReader(plan.zone, plan.order), sensor="s", counts=counts))
    return rows, counts, plan


def utc_ms(*args: int, tz: dt.tzinfo = dt.UTC) -> int:
    return int(dt.datetime(*args, tzinfo=tz).timestamp() * 1000)


def test_every_format_module_is_registered_under_its_name() -> None:
    modules = {info.name for info in pkgutil.iter_modules(collector.importer.__path__)} - NOT_FORMATS
    registered = {kind.module.rsplit(".", 1)[1] for kind in FORMATS.values()}
    assert modules == registered
    for name, kind in FORMATS.items():
        module = importlib.import_module(kind.module)
        assert module.detect is kind.detect and kind.title and kind.expects
        assert name in kind.module.replace("archmon_export", "archmon")


@pytest.mark.parametrize(("path", "expected"), [
    (SAMPLES / "hobo-ux100-fahrenheit.csv", "hobo"),
    (SAMPLES / "testo-174h-de.csv", "testo"),
    (SAMPLES / "testo-saveris-en.csv", "testo"),
    (UCI / "datatest.txt", "uci"),
])
def test_each_format_is_detected_from_its_header(path: Path, expected: str) -> None:
    if not path.is_file():
        pytest.skip(f"{path} missing (set ARCHMON_SHARED_DATA)")
    _, _, plan = readings(path)
    assert plan.layout.format == expected
    assert {v.quantity for v in plan.layout.values} == {"temperature", "humidity"}


def test_archmon_export_is_detected_and_needs_no_sensor(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("ts,site,room,sensor,quantity,value\n2024-03-05T00:00:00.000Z,t,r,s,temperature,19.5\n",
                    encoding="utf-8")
    plan = plan_import(config(), path, ImportOptions())
    assert plan.layout.format == "archmon" and dict(plan.scan.sensors) == {"s": 1}
    rows = list(read_rows(plan.file, plan.layout, TimeReader(dt.UTC, None), sensor=None, counts=RowCounts()))
    assert [r[:4] for r in rows] == [("s", "temperature", utc_ms(2024, 3, 5), 19.5)]


def test_hobo_fahrenheit_is_converted_and_the_headers_offset_wins_over_tz() -> None:
    path = SAMPLES / "hobo-ux100-fahrenheit.csv"
    rows, counts, plan = readings(path, tz=BERLIN)
    again, _, _ = readings(path, tz=ZoneInfo("America/New_York"))
    assert [r[:4] for r in rows] == [r[:4] for r in again]  # GMT+08:00 in the header, whatever --tz says
    assert plan.zone_from == "header" and plan.order == "mdy"  # 03/13/24: month first
    first = [r for r in rows if r.ts_ms == rows[0].ts_ms]
    # line 3: 03/12/24 11:00:00 PM at GMT+08:00 = 15:00 UTC; 64.40 °F = 18 ℃
    assert {(r.quantity, r.value) for r in first} == {("temperature", 18.0), ("humidity", 55.2)}
    assert rows[0].ts_ms == utc_ms(2024, 3, 12, 15, 0) and rows[0].origin.where == f"{path.name} line 3"
    assert all(isinstance(r, HistoricalReading) for r in rows)
    assert {r.quantity for r in rows} == {"temperature", "humidity"}  # no dew point
    assert counts.rows == 74 and len(rows) == 2 * 72 and counts.empty == 4  # two event rows without values
    noon = [r for r in rows if r.ts_ms == utc_ms(2024, 3, 13, 4, 30)]  # 03/13/24 12:30:00 PM (+08:00)
    midnight = [r for r in rows if r.ts_ms == utc_ms(2024, 3, 13, 16, 0)]  # 03/14/24 12:00:00 AM
    assert noon and midnight
    temps = [r.value for r in rows if r.quantity == "temperature"]
    assert min(temps) == pytest.approx((63.50 - 32) * 5 / 9) and max(temps) == 18.0


def test_testo_decimal_comma_windows_1252_and_a_preamble() -> None:
    path = SAMPLES / "testo-174h-de.csv"
    rows, counts, plan = readings(path, tz=BERLIN)
    assert plan.file.encoding == "cp1252" and plan.layout.header_line == 4 and plan.layout.delimiter == ";"
    assert [r[:4] for r in rows[:2]] == [("s", "temperature", utc_ms(2024, 10, 24, 22, 0), 17.5),
                                         ("s", "humidity", utc_ms(2024, 10, 24, 22, 0), 47.0)]
    assert rows[0].origin.where == f"{path.name} line 5" and counts.rows == 48 and len(rows) == 96
    assert max(r.value for r in rows if r.quantity == "temperature") == pytest.approx(18.0)


def test_testo_english_with_a_date_and_a_time_column_day_first() -> None:
    rows, _, plan = readings(SAMPLES / "testo-saveris-en.csv", tz=BERLIN)
    assert plan.file.encoding == "utf-8-sig" and plan.order == "dmy"
    assert rows[0][:4] == ("s", "temperature", utc_ms(2024, 11, 13, 7, 0), 19.2)


def test_a_decimal_comma_inside_quotes_of_a_comma_separated_file(tmp_path: Path) -> None:
    path = tmp_path / "logger.csv"
    path.write_text('Datum,Zeit,"Temperatur [°F]",rel. Feuchte\n"05.03.2024","08:00","68,0","45,5"\n',
                    encoding="utf-8")
    rows, _, _ = readings(path, tz=BERLIN)
    assert [(r.quantity, r.value) for r in rows] == [("temperature", 20.0), ("humidity", 45.5)]
    assert rows[0].ts_ms == utc_ms(2024, 3, 5, 7, 0)


def test_an_unrecognised_file_is_refused_naming_the_file_the_line_and_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("\nweight;colour\n3;red\n", encoding="utf-8")
    with pytest.raises(ImportRefused) as info:
        plan_import(config(), path, ImportOptions(sensor="s"))
    text = "\n".join(info.value.lines)
    assert text.startswith("notes.csv: line 2: 'weight;colour' does not start a file archmon recognises")
    for expected in ("UCI occupancy", "Date Time, GMT+08:00", "Datum/Zeit", "ts,site,room,sensor,quantity,value",
                     "--columns ts="):
        assert expected in text


def test_a_binary_file_and_an_empty_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "logger.hobo").write_bytes(b"\x00\x01HOBO\x00" * 10)
    (tmp_path / "empty.csv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ImportRefused, match="a binary file, not a CSV export"):
        plan_import(config(), tmp_path / "logger.hobo", ImportOptions(sensor="s"))
    with pytest.raises(ImportRefused, match=r"empty\.csv: the file is empty"):
        plan_import(config(), tmp_path / "empty.csv", ImportOptions(sensor="s"))


def test_slash_dates_that_fit_both_orders_need_date_order(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("Date Time,Temp °C\n03/04/24 10:00,20.0\n03/05/24 10:00,20.5\n", encoding="utf-8")
    with pytest.raises(ImportRefused, match="say which with --date-order"):
        plan_import(config(), path, ImportOptions(sensor="s"))
    month_first, _, _ = readings(path, date_order="mdy", tz=dt.UTC)
    day_first, _, _ = readings(path, date_order="dmy", tz=dt.UTC)
    assert [r.ts_ms for r in month_first] == [utc_ms(2024, 3, 4, 10), utc_ms(2024, 3, 5, 10)]
    assert [r.ts_ms for r in day_first] == [utc_ms(2024, 4, 3, 10), utc_ms(2024, 5, 3, 10)]


def test_clock_changes_the_repeated_hour_keeps_both_readings_and_the_skipped_hour_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "autumn.csv"
    lines = ["Datum/Zeit;Temperatur [°C]"] + [f"{stamp};{i},0" for i, stamp in enumerate([
        "27.10.2024 01:30", "27.10.2024 02:00", "27.10.2024 02:30", "27.10.2024 02:00", "27.10.2024 02:30",
        "27.10.2024 03:00", "31.03.2024 02:30"])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows, _, _ = readings(path, tz=BERLIN)
    good = [r for r in rows if isinstance(r, HistoricalReading)]
    # CEST (+02:00) until 03:00, then CET (+01:00): the second 02:00 and 02:30 are an hour later
    assert [r.ts_ms for r in good] == [utc_ms(2024, 10, 26, 23, 30), utc_ms(2024, 10, 27, 0, 0),
                                       utc_ms(2024, 10, 27, 0, 30), utc_ms(2024, 10, 27, 1, 0),
                                       utc_ms(2024, 10, 27, 1, 30), utc_ms(2024, 10, 27, 2, 0)]
    (skipped,) = [r for r in rows if isinstance(r, UnreadableRow)]
    assert skipped.origin.where == "autumn.csv line 8"
    assert "'31.03.2024 02:30' does not exist in Europe/Berlin" in skipped.reason


def test_timestamp_forms_and_offsets_in_the_data_win() -> None:
    clock = TimeReader(BERLIN, "mdy")
    assert clock.epoch_ms("2024-03-05T08:00:00.250Z") == utc_ms(2024, 3, 5, 8) + 250
    assert clock.epoch_ms("2024-03-05 08:00:00+08:00") == utc_ms(2024, 3, 5, 0)
    assert clock.epoch_ms("2024/03/05 08:00") == utc_ms(2024, 3, 5, 7)  # year first: no order needed
    assert clock.epoch_ms("03/05/2024 12:00:00 AM") == utc_ms(2024, 3, 4, 23)
    assert clock.epoch_ms("03/05/2024 12:15:00 PM") == utc_ms(2024, 3, 5, 11, 15)
    assert clock.epoch_ms("2024/03/05 下午 02:30:00") == utc_ms(2024, 3, 5, 13, 30)
    for bad, message in (("31.02.2024 10:00", "not a real date"), ("yesterday", "not a date and time"),
                         ("03/05/2024 13:00 PM", "AM/PM with an hour")):
        with pytest.raises(ValueError, match=message):
            clock.epoch_ms(bad)


def test_columns_override_detection_and_read_a_file_without_a_header(tmp_path: Path) -> None:
    uci = UCI / "datatest.txt"
    if not uci.is_file():
        pytest.skip("UCI data missing")
    rows, _, plan = readings(uci, columns=parse_columns("ts=date,light=Light"), tz=ZoneInfo("Europe/Brussels"))
    assert plan.layout.format == "columns" and plan.layout.leading == 1  # the unnamed row number, as detected
    assert rows[0][:4] == ("s", "light", utc_ms(2015, 2, 2, 13, 19), 585.2)  # "140","2015-02-02 14:19:00",..
    bare = tmp_path / "bare.txt"
    bare.write_text("2024-03-05 08:00\t68\t40\n2024-03-05 08:10\t70\t41\n", encoding="utf-8")
    rows, _, plan = readings(bare, columns=parse_columns("ts=1,temperature=2,humidity=3,temperature_unit=F"),
                             tz=dt.UTC)
    assert plan.layout.header_line == 0 and plan.layout.delimiter == "\t"
    assert [(r.quantity, round(r.value, 6)) for r in rows[:2]] == [("temperature", 20.0), ("humidity", 40.0)]
    with pytest.raises(ImportRefused, match="names \\['Feuchte'\\], but no line"):
        readings(bare, columns=parse_columns("ts=1,humidity=Feuchte"))
    with pytest.raises(ImportRefused, match="unknown key 'co2'"):
        parse_columns("ts=1,co2=2")
    assert parse_columns("ts=Date Time, GMT+08:00,temperature=3").refs == {"ts": "Date Time, GMT+08:00",
                                                                          "temperature": "3"}


def test_two_temperature_columns_are_refused_with_a_columns_hint(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("Date/Time;Temp inside [°C];Temp outside [°C]\n2024-03-05 08:00;20;5\n", encoding="utf-8")
    with pytest.raises(ImportRefused, match=r"2 temperature columns .*--columns ts=\.\.\.,temperature=2"):
        plan_import(config(), path, ImportOptions(sensor="s"))


def test_a_file_none_of_whose_first_timestamps_can_be_read_is_refused_not_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "swedish.csv"  # HOBOware on a Swedish PC: fm/em instead of AM/PM
    path.write_text('"#","Date Time, GMT+01:00","Temp, °C (LGR S/N: 1234)"\n1,07/19/18 10:00:00 fm,4.558\n'
                    "2,07/19/18 11:00:00 fm,4.402\n", encoding="utf-8")
    with pytest.raises(ImportRefused, match=r"swedish\.csv: line 2: timestamp '07/19/18 10:00:00 fm' is not a date "
                                            r"and time .* none of the first 2 rows' timestamps can be read"):
        plan_import(config(), path, ImportOptions(sensor="s"))
