"""Climate control in the compliance report, on a real store with known answers: a dehumidifier's switch log
(a run carried into the period, one across midnight, one still running at the report's moment, switched on
at the device) gives exact run hours and starts per period and per day; a followed sensor's minute readings
with exactly two hours out of band give the exact share of time the loop held the band, and a second,
unfollowed sensor of the room that is always out of band does not change it. The JSON, the CSV and both
printed languages carry it (every glyph of the new section drawn from the embedded font)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from alerts.control import ControlRecords
from alerts.control.records import SwitchRow
from archmon.cli import main
from archmon.config import Config
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from dashboards.reports import ComplianceReport, ReportRequest, build_report
from dashboards.reports.labels import LABELS
from tests.dashboards.pdf_glyphs import drawn_glyphs
from tests.dashboards.site_config import room_toml, sensor_toml, write_site_config

TZ = ZoneInfo("Asia/Shanghai")
MINUTE = 60_000
HOUR = 3_600_000
DAY1 = dt.date(2025, 3, 3)


def at(day: int, hh: int, mm: int = 0) -> int:
    """UTC ms of a local time on day ``day`` (0: 2025-03-03; -1 the day before)."""
    local = dt.datetime.combine(DAY1 + dt.timedelta(days=day), dt.time(hh, mm), tzinfo=TZ)
    return round(local.timestamp() * 1000)


NOW = at(2, 9, 30)  # the report is made on the third day at 09:30
SWITCHES = [  # (time, on, how)
    (at(-1, 23), True, "command"),  # on before the period: its first 1.5 h count, but it is no start in it
    (at(0, 1, 30), False, "command"),
    (at(0, 10), True, "command"),  # 2.25 h
    (at(0, 12, 15), False, "command"),
    (at(1, 22), True, "command"),  # across midnight: 2 h on day 1, 2 h on day 2
    (at(2, 2), False, "command"),
    (at(2, 8), True, "external"),  # switched on at the device; still on at the report's moment: 1.5 h
]
RUN_H = {0: 1.5 + 2.25, 1: 2.0, 2: 2.0 + 1.5}
STARTS = {0: 1, 1: 1, 2: 1}


def write_site(folder: Path) -> Config:
    return write_site_config(
        folder, name="档案馆", timezone="Asia/Shanghai",
        rooms=[room_toml("A1", name_zh="一号库", name_en="Store 1", profile="paper")],
        sensors=[sensor_toml("th1", "A1", interval_s=60), sensor_toml("th2", "A1", interval_s=60)],
        extra=f"""[[actuators]]
id = "dehum1"
room = "A1"
name_zh = "去湿机 1"
name_en = "Dehumidifier 1"
kind = "modbus"
device = "{folder / "relay-port"}"
address = 1
coil = 0
controls = "humidity_down"
sensors = ["th1"]
start_at = 55
stop_at = 50
""")


def th1_humidity(ts: int) -> float:
    return 62.0 if at(0, 10) <= ts < at(0, 12) else 52.0  # exactly two hours above the paper band (60 %RH)


@pytest.fixture
def site(tmp_path: Path) -> Config:
    config = write_site(tmp_path)
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=TZ)
    try:
        batch: list[Reading] = []
        for ts in range(at(-1, 23), NOW, MINUTE):
            batch += [Reading("th1", "humidity", th1_humidity(ts), ts, "A1"),
                      Reading("th1", "temperature", 20.0, ts, "A1"),
                      Reading("th2", "humidity", 66.0, ts, "A1"),  # the room's other sensor, not followed
                      Reading("th2", "temperature", 20.0, ts, "A1")]
            if len(batch) >= 2000:
                store.write(Batch(readings=batch))
                batch = []
        store.write(Batch(readings=batch))
    finally:
        store.close()
    records = ControlRecords(db)
    try:
        for ts, on, how in SWITCHES:
            actor = "device" if how == "external" else "system"
            records.record(ts, "dehum1", actor, {"event": "confirmed" if how == "command" else how,
                                                  "state": "on" if on else "off"},
                           switch=SwitchRow("dehum1", ts, on, how, actor, "demand" if on else "satisfied"))
        records.record(at(0, 9, 59), "dehum1", "system", {"event": "command", "state": "on"})
        records.set_override("dehum1", False, at(1, 9), at(1, 11), "张三", "更换滤网")
    finally:
        records.close()
    return config


def _report(config: Config, first: dt.date, last: dt.date) -> ComplianceReport:
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=TZ, readonly=True)
    try:
        return build_report(config, store, ReportRequest(first, last, now_ms=NOW), db_path=db)
    finally:
        store.close()


def test_run_hours_and_starts_come_exactly_from_the_switch_log(site: Config) -> None:
    report = _report(site, DAY1, DAY1 + dt.timedelta(days=2))
    (room,) = report.rooms
    (device,) = room.control
    assert device.actuator == "dehum1" and device.controls == "humidity_down" and device.sensors == ("th1",)
    assert device.run_s == sum(RUN_H.values()) * 3600  # 9.25 h: the hours after the report's moment not counted
    assert device.starts == 3 and device.switches == 6
    assert device.commands == 1 and device.overrides == 1 and device.failures == 0
    for i, row in enumerate(room.daily):
        assert row.control["dehum1"].run_hours == RUN_H[i], row.date
        assert row.control["dehum1"].starts == STARTS[i], row.date
    (one_day,) = _report(site, DAY1 + dt.timedelta(days=1), DAY1 + dt.timedelta(days=1)).rooms[0].control
    assert one_day.run_hours == 2.0 and one_day.starts == 1  # a period starting with the device off


def test_the_share_of_time_the_loop_held_the_band_is_exact_and_only_of_its_sensors(site: Config) -> None:
    (room,) = _report(site, DAY1, DAY1 + dt.timedelta(days=2)).rooms
    (device,) = room.control
    covered = (NOW - at(0, 0)) / 1000  # readings every minute from before the period to the report's moment
    assert device.covered_s == covered
    assert device.in_band_s == covered - 2 * 3600
    assert device.held_band_pct == round(100 * (covered - 7200) / covered, 3)
    assert (device.band_low, device.band_high) == (45.0, 60.0)
    assert room.quantities["humidity"].in_band_pct < 50  # th2, always out of band, counts for the room only


def test_the_json_the_csv_and_both_printed_languages_carry_it(site: Config, tmp_path: Path) -> None:
    config = str(site.path)
    args = ["report", "--config", config, "--from", "2025-03-03", "--to", "2025-03-05"]
    assert main([*args, "--format", "json", "--out", str(tmp_path / "r.json")]) == 0
    (room,) = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["rooms"]
    (device,) = room["control"]
    assert device["actuator"] == "dehum1" and device["starts"] == 3 and device["held_band_pct"] is not None
    assert room["daily"][0]["control"]["dehum1"] == {"run_hours": 3.75, "starts": 1}
    assert main([*args, "--format", "csv", "--out", str(tmp_path / "r.csv"), "--lang", "en"]) == 0
    rows = list(csv.reader((tmp_path / "r.csv").read_text(encoding="utf-8").lstrip("\ufeff").splitlines()))
    hours, starts = rows[0].index("controlled devices run h"), rows[0].index("controlled devices starts")
    # made after the period: the device switched on at 08:00 on the last day ran to its end
    assert [(r[hours], r[starts]) for r in rows[1:]] == [("3.75", "1"), ("2", "1"), ("18", "1")]
    for lang, words in (("zh", ("温湿度调控设备", "去湿机 1", "除湿")), ("en", ("Climate control devices",
                                                                         "Dehumidifier 1", "dehumidify"))):
        out = tmp_path / f"r-{lang}.pdf"
        assert main([*args, "--format", "pdf", "--lang", lang, "--out", str(out), "--by", "张三"]) == 0
        text = "".join(page.extract_text() for page in PdfReader(out).pages)
        flat = "".join(text.split())
        for word in words:
            assert "".join(word.split()) in flat, (lang, word)
        assert "23.8" in text  # 23.75 h printed to one decimal
        glyphs = drawn_glyphs(out.read_bytes())
        broken = [g for g in glyphs if g.notdef or (not g.has_outline and not g.text.isspace())]
        assert not broken, broken[:10]
        assert set(LABELS[lang]["control"].replace(" ", "")) <= {g.text for g in glyphs}
