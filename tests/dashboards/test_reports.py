"""The compliance report on a small site with known answers: excursions merged within the clear delay, a
sensor moving between rooms, a sensor that never reported, doors opened in and after working hours, an
alert acknowledged with a comment, an access session, calibration records, configured duty times, both
stability interpretations; and ``archmon report`` writing JSON and CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.access import AccessRegister
from alerts.model import Condition
from alerts.store import AlertReader, AlertStore
from archmon.cli import main
from archmon.config import Config, load_config
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from dashboards.reports import ComplianceReport, ReportRequest, build_report, report_to_json
from tests.dashboards.site_config import Calibration, room_toml, sensor_toml, write_site_config

TZ = ZoneInfo("Asia/Shanghai")
MINUTE = 60_000
DAY1 = dt.date(2025, 3, 3)  # a Monday


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    """UTC ms of a local time on day ``day`` (0: 2025-03-03)."""
    local = dt.datetime.combine(DAY1 + dt.timedelta(days=day), dt.time(hh, mm, ss), tzinfo=TZ)
    return round(local.timestamp() * 1000)


def write_site(tmp_path: Path) -> Config:
    return write_site_config(
        tmp_path, name="档案馆", timezone="Asia/Shanghai",
        reports='duty_times = ["15:00", "09:00"]\nduty_tolerance_min = 10',
        rooms=[room_toml("A1", name_zh="一号库", name_en="Store 1"),
               room_toml("A2", name_zh="二号库",
                         overrides='{ stability = { interpretation = "B", temperature_setpoint = 22 } }')],
        sensors=[sensor_toml("th1", "A1", name="东墙温湿度", interval_s=60,
                             calibrations=[Calibration("temperature", "2024-03-01", "JL-001"),
                                           Calibration("humidity", "2024-06-01", "JL-002")]),
                 sensor_toml("th2", "A2", interval_s=60),
                 sensor_toml("th3", "A2", interval_s=60),
                 sensor_toml("d1", "A1", kind="door", interval_s=60)])


def th1_temperature(ts: int) -> float:
    if at(0, 10) <= ts < at(0, 10, 30) or at(0, 14) <= ts <= at(0, 14, 20):
        return 25.0
    if at(0, 10, 35) <= ts <= at(0, 10, 40):
        return 24.6  # 5 minutes after the first stretch: less than the clear delay (600 s), merged with it
    return 20.0


def readings() -> list[Reading]:
    out = []
    for minute in range(2 * 1440):
        ts = at(0, 0) + minute * MINUTE
        out.append(Reading("th1", "temperature", th1_temperature(ts), ts, "A1"))
        out.append(Reading("th1", "humidity", 50.0, ts, "A1"))
        room, value = ("A1", 18.0) if ts < at(0, 12) else ("A2", 22.0)  # th3 moves at noon on day 1
        out.append(Reading("th3", "temperature", value, ts + 1000, room))
        out.append(Reading("th3", "humidity", 55.0, ts + 1000, room))
    for start, end in ((at(0, 9), at(0, 9, 5)), (at(0, 20), at(0, 20, 2))):  # door open in and after hours
        out.append(Reading("d1", "door", 1.0, start, "A1"))
        out.append(Reading("d1", "door", 0.0, end, "A1"))
    out += [Reading("d1", "door", 0.0, at(0, hh), "A1") for hh in (0, 6, 12, 18)]  # periodic "closed"
    return out


@pytest.fixture
def site(tmp_path: Path) -> Config:
    config = write_site(tmp_path)
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=TZ)
    try:
        data = readings()
        for start in range(0, len(data), 400):
            store.write(Batch(readings=data[start:start + 400]))
    finally:
        store.close()
    alerts = AlertStore(db)
    try:
        band = Condition("band", "th1/temperature/high", "A1", "th1", "temperature", True, at(0, 10, 15), 25.0, 24.0)
        alert = alerts.create_alert(band, at(0, 10, 15), "active", ("温度超上限", "temperature high"))
        alerts.set_state(alert.alert, "acknowledged", at(0, 10, 45), by="王五", note="空调已调整")
        alerts.add_comment(alert.alert, at(0, 10, 45), "王五", "空调已调整")
        entry = Condition("unregistered_entry", "A1", "A1", "d1", "door", True, at(0, 20), 1.0)
        alerts.create_alert(entry, at(0, 20), "active", ("未登记进入", "unregistered entry"))
    finally:
        alerts.close()
    register = AccessRegister(db)
    try:
        session = register.open_session("A1", ["张三", "李四"], "查档", "SP-7", "张三", ts_ms=at(0, 8, 55))
        register.close_session(session.id, "张三", ts_ms=at(0, 9, 10))
    finally:
        register.close()
    return config


def report(config: Config, **options: object) -> ComplianceReport:
    db = config.resolve(config.storage.sqlite_path)
    store = SqliteStore(db, tz=TZ, readonly=True)
    reader = AlertReader(db)
    try:
        request = ReportRequest(DAY1, DAY1 + dt.timedelta(days=1), now_ms=at(5, 0), **options)  # type: ignore[arg-type]
        return build_report(config, store, request, alerts=reader, db_path=db)
    finally:
        reader.close()
        store.close()


def test_excursions_merge_within_the_clear_delay_and_name_their_extreme(site: Config) -> None:
    a1 = report(site).rooms[0]
    temperature = a1.quantities["temperature"]
    assert [(e.sensor, e.side, e.start_ms, e.end_ms, e.extreme) for e in temperature.excursions] == [
        ("th1", "high", at(0, 10), at(0, 10, 40), 25.0), ("th1", "high", at(0, 14), at(0, 14, 20), 25.0)]
    first, second = temperature.excursions
    assert first.readings == 30 + 6 and second.readings == 21
    assert first.duration_s == pytest.approx(36 * 60, abs=20) and second.duration_s == pytest.approx(21 * 60, abs=20)
    assert a1.quantities["humidity"].excursions == () and a1.quantities["humidity"].in_band_pct == 100


def test_a_moving_sensor_counts_in_each_room_for_its_time_there_and_a_silent_one_counts_as_missing(
        site: Config) -> None:
    a1, a2 = report(site).rooms
    t1, t2 = a1.quantities["temperature"], a2.quantities["temperature"]
    assert t1.sensors == ("th1", "th3") and t2.sensors == ("th2", "th3")
    assert t1.readings == 2 * 1440 + 720 and t2.readings == 2 * 1440 - 720
    assert t1.min == 18.0 and t2.min == 22.0  # th3's readings stay in the room of their time
    assert t2.expected_s == pytest.approx(48 * 3600 + 36 * 3600, abs=5)  # th2 all period, th3 from noon
    assert t2.completeness_pct == pytest.approx(100 * 36 / 84, abs=0.05)
    assert t1.completeness_pct == pytest.approx(100, abs=0.01)
    # stability, interpretation A in A1: day 1 th1 swings 20 → 25 (th3's half day is steady), day 2 steady
    assert [d.quantities["temperature"].stable for d in a1.daily] == [False, True]
    assert [d.quantities["temperature"].range for d in a1.daily] == [5.0, 0.0]
    # interpretation B with set-point 22 in A2: th3 sits at 22 (th2 has no data and is not judged), but the
    # room's coverage on day 1 (th3 for 12 of th2 + th3's 36 expected hours) is not sufficient
    assert a2.stability_interpretation == "B"
    assert [d.quantities["temperature"].sufficient for d in a2.daily] == [False, True]
    assert [d.quantities["temperature"].stable for d in a2.daily] == [None, True]
    assert t2.days_stable == 1 and t1.days_stable == 1


def test_doors_alerts_access_calibration_and_duty(site: Config) -> None:
    a1, a2 = report(site).rooms
    assert (a1.access.door_sensors, a1.access.openings, a1.access.after_hours_openings) == (("d1",), 2, 1)
    assert a1.access.unregistered_entries == 1 and a2.access.openings == 0
    (session,) = a1.access.sessions
    assert (session.people, session.approval, session.closed_ms) == (("张三", "李四"), "SP-7", at(0, 9, 10))
    band, entry = a1.alerts
    assert (band.rule, band.acked_by, band.time_to_ack_s) == ("band", "王五", 1800.0)
    assert [c.comment for c in band.comments] == ["空调已调整"]
    assert entry.rule == "unregistered_entry" and entry.time_to_ack_s is None and a2.alerts == ()
    rows = {(c.sensor, c.quantity): c for c in a1.calibration}
    assert rows[("th1", "temperature")].due == dt.date(2025, 3, 1) and rows[("th1", "temperature")].overdue is True
    assert rows[("th1", "humidity")].overdue is False and rows[("th1", "humidity")].certificate == "JL-002"
    assert rows[("th3", "temperature")].last_calibrated is None and rows[("th3", "temperature")].overdue is None
    assert a1.duty.times == ("09:00", "15:00") and a1.duty.tolerance_min == 10
    assert (a1.duty.expected, a1.duty.present) == (4, 4)
    assert a1.duty.checks[0].temperature == 20.0 and a1.duty.checks[0].humidity == 50.0
    assert a1.preservation.hours == 48 + 12 and a1.preservation.mould_max_exposure_h == 0  # th1 and th3 hours


def test_unknown_rooms_and_reversed_periods_are_refused(site: Config) -> None:
    from archmon.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown room"):
        report(site, rooms=("A9",))
    db = site.resolve(site.storage.sqlite_path)
    store = SqliteStore(db, tz=TZ, readonly=True)
    try:
        with pytest.raises(ConfigError, match="before"):
            build_report(site, store, ReportRequest(DAY1, DAY1 - dt.timedelta(days=1)))
    finally:
        store.close()


def test_archmon_report_writes_json_and_the_per_day_csv(site: Config, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = str(site.path)
    args = ["report", "--config", config, "--from", "2025-03-03", "--to", "2025-03-04"]
    assert main([*args, "--format", "json", "--out", str(tmp_path / "r.json"), "--rooms", "A1", "--by", "审核员"]) == 0
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["period"] == {**data["period"], "from": "2025-03-03", "to": "2025-03-04", "tz": "Asia/Shanghai",
                              "seconds": 2 * 86400}
    (room,) = data["rooms"]
    assert set(room) >= {"id", "profile", "stability_interpretation", "quantities", "daily", "alerts", "access",
                         "calibration", "duty", "preservation"}
    for quantity in ("temperature", "humidity"):
        assert set(room["quantities"][quantity]) >= {
            "readings", "completeness_pct", "min", "mean", "max", "in_band_pct", "days_in_period", "days_with_data",
            "days_sufficient", "days_stable", "excursions"}
    assert room["quantities"]["temperature"]["excursions"][0]["start_at"] == "2025-03-03T10:00:00+08:00"
    assert data["generated_by"] == "审核员" and room["name_zh"] == "一号库"
    assert main([*args, "--format", "csv", "--out", str(tmp_path / "r.csv"), "--lang", "zh"]) == 0
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(text.lstrip("\ufeff").splitlines()))
    assert rows[0][:3] == ["库房", "库房名称", "日期"] and len(rows) == 1 + 2 * 2
    assert rows[1][:3] == ["A1", "一号库", "2025-03-03"]
    header = rows[0]
    assert rows[1][header.index("温度 日较差")] == "5" and rows[1][header.index("温度 24h稳定")] == "否"
    assert rows[1][header.index("值班 09:00 有记录")] == "是"
    capsys.readouterr()
    assert main([*args, "--format", "pdf", "--out", str(tmp_path / "r.pdf"), "--rooms", "B7"]) == 2
    assert "unknown room" in capsys.readouterr().err and not (tmp_path / "r.pdf").exists()
    assert main([*args, "--format", "json", "--out", str(tmp_path / "x.json"), "--rooms", "B7"]) == 2
    assert "unknown room" in capsys.readouterr().err


def test_the_json_is_the_same_twice(site: Config) -> None:
    assert report_to_json(report(site)) == report_to_json(report(site))


def test_a_bad_reports_table_is_named_by_check_config(tmp_path: Path) -> None:
    from archmon.app import check_references

    config = write_site(tmp_path)
    broken = config.model_copy(update={"reports": {"duty_times": [], "sufficient_pct": 120, "color": "red"}})
    problems = [p for p in check_references(broken) if "reports." in p]
    assert len(problems) == 3, problems
    assert any("reports.duty_times" in p and "at least one" in p for p in problems)
    assert any("reports.sufficient_pct" in p and "120" in p for p in problems)
    assert any("reports.color: unknown option" in p for p in problems)


def test_recorded_calibrations_and_the_alert_rules_interval_fill_the_calibration_table(site: Config) -> None:
    """A calibration recorded with ``archmon calibration add`` wins over the config's date; the due date uses
    ``[alerts.calibration]`` (per sensor where set), the same interval as the "calibration due" alert."""
    from alerts.calibration.records import record_calibration

    db = site.resolve(site.storage.sqlite_path)
    path = site.path
    assert path is not None
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '\n[alerts.calibration]\ninterval_months = 6\n[alerts.calibration.sensors.th3]\n'
                    'interval_months = 24\n', encoding="utf-8")
    config = load_config(path)
    store = AlertStore(db)
    try:
        record_calibration(store, config, "th3", dt.date(2024, 9, 1), "JL-REC-9", offset_temperature=-0.2,
                           by="王工", now_ms=at(0, 0))
    finally:
        store.close()
    rows = {(c.sensor, c.quantity): c for c in report(config).rooms[0].calibration}
    th3 = rows[("th3", "temperature")]
    assert (th3.last_calibrated, th3.certificate, th3.source) == (dt.date(2024, 9, 1), "JL-REC-9", "records")
    assert th3.due == dt.date(2026, 9, 1) and th3.overdue is False  # its own 24 months
    th1 = rows[("th1", "humidity")]  # config date 2024-06-01 + the site's 6 months
    assert th1.source == "config" and th1.due == dt.date(2024, 12, 1) and th1.overdue is True
