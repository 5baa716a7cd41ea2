"""``archmon import`` end to end (``main()`` in-process, real files, a real SQLite database): importing twice
adds nothing, bad rows are quarantined naming file and line, an unknown sensor is refused with TOML lines
that work, an archmon export imported into a second database gives identical readings, the exit codes, the
progress on a terminal and in a pipe, and what ``source = "import"`` means to the rest of archmon."""

from __future__ import annotations

import io
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.engine import AlertEngine
from alerts.store import AlertStore
from archmon.cli import main
from archmon.config import Config, load_config, parse_config
from archmon.domain import Reading
from archmon.errors import ConfigError
from collector.backfill import BackfillResult
from collector.importer.progress import ImportProgress
from collector.importer.rows import RowCounts
from collector.routing import Router
from collector.store import SqliteStore

SAMPLES = Path(__file__).parent / "import_samples"
HOBO = SAMPLES / "hobo-ux100-fahrenheit.csv"
TESTO = SAMPLES / "testo-174h-de.csv"
ROOT = Path(__file__).resolve().parents[2]
UCI = Path(os.environ.get("ARCHMON_SHARED_DATA") or ROOT.parent / "shared" / "data") / "uci-occupancy"
SITE = """[site]
name = "Archive"
timezone = "Asia/Shanghai"
language = "en"
[storage]
sqlite_path = "{db}"
[http]
enabled = false
[[rooms]]
id = "stack-2"
profile = "paper"
"""
LOGGERS = """
[[sensors]]
id = "hobo-7"
room = "stack-2"
source = "import"
expected_interval_s = 1800
[[sensors]]
id = "testo-3"
room = "stack-2"
source = "import"
expected_interval_s = 3600
{calibration}"""


def write_config(folder: Path, *, db: str = "archmon.db", loggers: bool = True, calibration: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "archmon.toml"
    text = SITE.format(db=db) + (LOGGERS.format(calibration=calibration) if loggers else "")
    path.write_text(text, encoding="utf-8")
    return path


def store_of(config_path: Path) -> SqliteStore:
    config = load_config(config_path)
    return SqliteStore(config.resolve(config.storage.sqlite_path), tz=config.site.tz, readonly=True)


def test_an_unknown_sensor_is_refused_with_toml_lines_that_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path, loggers=False)
    assert main(["import", str(HOBO), "--sensor", "hobo-7", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "archmon import: sensor(s) 'hobo-7' not in" in err
    assert not (tmp_path / "archmon.db").exists()  # refused before anything is stored
    toml = [line.removeprefix("  ") for line in err.splitlines() if line.startswith("  ")][:-1]
    assert toml[:4] == ["[[sensors]]", 'id = "hobo-7"', 'room = "stack-2"  # the room the logger was in: stack-2',
                        'source = "import"  # readings come only from imported files: no topic or address']
    with config.open("a", encoding="utf-8") as handle:  # what it says to add is enough
        handle.write("\n" + "\n".join(toml) + "\n")
    assert main(["check-config", str(config)]) == 0
    assert main(["import", str(HOBO), "--sensor", "hobo-7", "-c", str(config)]) == 0
    assert "hobo-7" in load_config(config).sensors[0].id


def test_importing_a_file_twice_adds_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path)
    assert main(["import", str(HOBO), "--sensor", "hobo-7", "-c", str(config)]) == 0
    first = capsys.readouterr()
    assert first.out.splitlines() == [
        "hobo-ux100-fahrenheit.csv: 74 rows, 144 offered, 144 stored, 0 already stored, 0 rejected, 4 empty cells "
        "(no reading), stored from 2024-03-12 23:00:00+08:00 to 2024-03-14 10:30:00+08:00"]
    assert "HOBOware export, 74 rows → sensor hobo-7" in first.err and "(°F → ℃)" in first.err
    assert main(["import", str(HOBO), "--sensor", "hobo-7", "-c", str(config)]) == 0
    assert "144 offered, 0 stored, 144 already stored, 0 rejected" in capsys.readouterr().out
    store = store_of(config)
    try:
        assert store.count_readings("hobo-7") == 144
        assert store.counters()["source.import:hobo-ux100-fahrenheit.csv.backfilled"] == 2 * 144
        assert store.series("hobo-7", "temperature", 0, 2**62)[0][1] == 18.0
        assert [b.count for b in store.buckets("hobo-7", "humidity", 0, 2**62, "day")] == [2, 48, 22]  # not doubled
    finally:
        store.close()


def test_bad_rows_are_quarantined_naming_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path)
    bad = tmp_path / "stack2-march.csv"
    bad.write_text("Datum/Zeit;Temperatur [°C];Feuchte [%rF]\n"
                   "05.03.2024 08:00:00;19,5;48,0\n"
                   "31.02.2024 09:00:00;19,6;48,1\n"  # line 3: no such date
                   "05.03.2024 10:00:00;warm;48,2\n"  # line 4: not a number (its humidity is fine)
                   "05.03.2024 11:00:00;19,8;130,0\n"  # line 5: humidity out of range (backfill's validation)
                   "05.03.2024 12:00:00\n"  # line 6: cells missing
                   "05.03.2024 13:00:00;20,0;48,5\n", encoding="cp1252")
    assert main(["import", str(bad), "--sensor", "testo-3", "-c", str(config)]) == 1  # partly imported
    captured = capsys.readouterr()
    assert "6 rows, 10 offered, 6 stored, 0 already stored, 4 rejected (all kept in the quarantine: archmon " \
           "quarantine)" in captured.out
    assert "archmon quarantine lists them" in captured.err
    assert "  rejected: stack2-march.csv line 3: timestamp '31.02.2024 09:00:00' is not a real date" in captured.err
    store = store_of(config)
    try:
        assert store.count_readings("testo-3") == 6  # lines 2 and 7, line 4's humidity, line 5's temperature
        records = sorted(store.quarantine(), key=lambda q: q.reason)
    finally:
        store.close()
    assert {q.source for q in records} == {"import:stack2-march.csv"} and {q.sensor for q in records} == {"testo-3"}
    got = [(q.stage, q.reason, q.payload.decode()) for q in records]
    assert got == [
        ("decode", "stack2-march.csv line 3: timestamp '31.02.2024 09:00:00' is not a real date or time (day is "
                   "out of range for month)", "31.02.2024 09:00:00;19,6;48,1"),
        ("decode", "stack2-march.csv line 4: temperature ('Temperatur [°C]'): 'warm' is not a number",
         "05.03.2024 10:00:00;warm;48,2"),
        ("validate", "stack2-march.csv line 5: sensor testo-3: humidity: 130 %RH is outside the physical range "
                     "0..100", "05.03.2024 11:00:00;19,8;130,0"),
        ("decode", "stack2-march.csv line 6: 1 cells, expected at least 3", "05.03.2024 12:00:00"),
    ]
    assert main(["quarantine", "-c", str(config)]) == 0
    assert "stack2-march.csv line 5" in capsys.readouterr().out


def test_an_archmon_export_imported_into_a_second_database_gives_identical_readings(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    calibration = '[sensors.calibration.temperature]\noffset = -0.3\n'  # testo-3's: applied once, at the first import
    one = write_config(tmp_path / "one", calibration=calibration)
    two = write_config(tmp_path / "two", calibration=calibration)
    assert main(["import", str(HOBO), "--sensor", "hobo-7", "-c", str(one)]) == 0
    assert main(["import", str(TESTO), "--sensor", "testo-3", "--tz", "Europe/Berlin", "-c", str(one)]) == 0
    period = ["--from", "2024-01-01", "--to", "2025-01-01", "--format", "csv"]
    exported = tmp_path / "one.csv"
    assert main(["export", *period, "-o", str(exported), "-c", str(one)]) == 0
    assert main(["import", str(exported), "-c", str(two)]) == 0  # the rows name their sensors
    out = capsys.readouterr().out
    assert "one.csv: 240 rows, 240 offered, 240 stored, 0 already stored, 0 rejected" in out
    again = tmp_path / "two.csv"
    assert main(["export", *period, "-o", str(again), "-c", str(two)]) == 0
    assert again.read_text() == exported.read_text()
    first, second = store_of(one), store_of(two)
    try:
        assert list(second.readings(0, 2**62)) == list(first.readings(0, 2**62))
        assert first.series("testo-3", "temperature", 0, 2**62)[0][1] == pytest.approx(17.2)  # 17.5 - 0.3, once
    finally:
        first.close()
        second.close()
    three = write_config(tmp_path / "three")
    assert main(["import", str(exported), "--sensor", "hobo-7", "-c", str(three)]) == 0
    assert "96 rows of other sensors left out" in capsys.readouterr().out
    assert main(["import", str(exported), "--sensor", "nobody", "-c", str(three)]) == 2


def test_exit_codes_for_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path)
    base = ["--sensor", "hobo-7", "-c", str(config)]
    assert main(["import", str(tmp_path / "missing.csv"), *base]) == 2
    assert main(["import", str(HOBO), "--tz", "Mars/Olympus", *base]) == 2
    assert main(["import", str(HOBO), "--columns", "temperature=2", *base]) == 2
    assert main(["import", str(HOBO), "-c", str(config)]) == 2  # which sensor?
    err = capsys.readouterr().err
    assert "missing.csv: cannot read the file" in err and "'Mars/Olympus' is not a time zone" in err
    assert "--columns: name the timestamp" in err and "does not name its sensor: say which with --sensor ID" in err
    assert main(["import", str(HOBO), str(tmp_path / "missing.csv"), *base]) == 2
    assert not (tmp_path / "archmon.db").exists()  # one bad file of several: nothing imported


def test_progress_is_a_bar_on_a_terminal_and_a_line_every_tenth_in_a_pipe() -> None:
    pipe = io.StringIO()
    progress = ImportProgress("big.csv", 1000, pipe)
    for rows in (250, 500, 750, 1000):
        progress(RowCounts(rows=rows), BackfillResult(stored=2 * rows))
    progress.close(RowCounts(rows=1000))
    assert pipe.getvalue().splitlines() == ["big.csv: 250 of 1,000 rows read (25 %), 500 readings stored",
                                            "big.csv: 500 of 1,000 rows read (50 %), 1,000 readings stored",
                                            "big.csv: 750 of 1,000 rows read (75 %), 1,500 readings stored"]
    leader, follower = os.openpty()
    try:
        with open(follower, "w", encoding="utf-8", closefd=False) as terminal:
            progress = ImportProgress("big.csv", 1000, terminal)
            progress(RowCounts(rows=500), BackfillResult(stored=1000))
            progress.close(RowCounts(rows=1000))
            terminal.flush()
        shown = ""  # a pty hands over what is there at each read: read until the final bar arrived
        while "1000/1000" not in shown and select.select([leader], [], [], 5)[0]:
            shown += os.read(leader, 65536).decode("utf-8", "replace")
    finally:
        os.close(leader)
        os.close(follower)
    assert "\r" in shown and "big.csv" in shown and re.search(r"1000/1000", shown)


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script (runs a command on a terminal)")
def test_the_command_draws_its_bar_on_a_terminal_that_reports_no_size(tmp_path: Path) -> None:
    config = write_config(tmp_path)  # `script` without a terminal of its own gives a 0 × 0 one: tqdm drew nothing
    archmon = Path(sys.executable).with_name("archmon")
    command = shlex.join([str(archmon), "--log-level", "WARNING", "import", str(HOBO), "--sensor", "hobo-7",
                          "-c", str(config)])
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)
    shown = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0, shown
    assert "hobo-ux100-fahrenheit.csv: 100%|" in shown and "74/74" in shown


def _mixed(tmp_path: Path) -> Config:
    return parse_config({
        "site": {"timezone": "Asia/Shanghai"}, "storage": {"sqlite_path": str(tmp_path / "a.db")},
        "rooms": [{"id": "r"}], "mqtt": [{"id": "broker"}],
        "alerts": {"calibration": {"uncalibrated": False}},
        "sensors": [{"id": "live", "room": "r", "source": "broker", "topic": "zigbee2mqtt/live",
                     "format": "zigbee2mqtt", "expected_interval_s": 60},
                    {"id": "logger", "room": "r", "source": "import", "expected_interval_s": 60}]})


def test_an_import_sensor_needs_no_source_is_never_routed_and_never_goes_stale(tmp_path: Path) -> None:
    from archmon.app import check_references

    config = _mixed(tmp_path)
    assert check_references(config) == []
    router = Router(config)
    assert router.mqtt_sensor("broker", "zigbee2mqtt/live").id == "live"  # type: ignore[union-attr]
    assert router.port_sensors("import") == [] and "logger" not in router.options
    with pytest.raises(ConfigError, match="'import' is reserved"):
        parse_config({"rooms": [{"id": "r"}], "mqtt": [{"id": "import"}]})
    store = AlertStore(tmp_path / "a.db")
    try:
        engine = AlertEngine(config, store)
        start = 1_764_000_000_000
        engine.advance(start)
        engine.feed(Reading("logger", "temperature", 20.0, start, "r"))  # e.g. rebuilt from imported history
        stale = [(t.sensor, t.state) for t in engine.advance(start + 3_600_000) if t.rule == "stale"]
    finally:
        store.close()
    assert stale == [("live", "active")]  # the live sensor went silent; the logger is not expected to report
