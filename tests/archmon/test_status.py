"""``archmon status``: one definition of stale shared with the alert rule, times in the site's zone with
their offset, and a view that stays readable for a site with hundreds of sensors."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.engine import AlertEngine
from alerts.store import AlertStore
from archmon.config import Config, parse_config
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from dashboards.status import FULL_LIST_MAX, format_status, status_report

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z = 08:00 in Asia/Shanghai


def _site(db: Path, sensors: list[tuple[str, str, float]], *, rooms: list[str], alerts: dict | None = None) -> Config:
    return parse_config({
        "site": {"name": "t", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(db)},
        "rooms": [{"id": room} for room in rooms],
        "serial": [{"id": "bus", "device": "/dev/null", "protocol": "line", "line_pattern": "(?P<sensor>\\w+) "
                    "T=(?P<temperature>[\\d.]+)"}],
        "sensors": [{"id": sid, "room": room, "source": "bus", "expected_interval_s": interval}
                    for sid, room, interval in sensors],
        "alerts": alerts or {},
    })


def _store(config: Config, readings: list[Reading]) -> None:
    store = SqliteStore(config.storage.sqlite_path, tz=ZoneInfo("Asia/Shanghai"))
    try:
        batch = Batch()
        batch.readings.extend(readings)
        store.write(batch)
    finally:
        store.close()


def test_status_and_the_stale_rule_agree_for_a_non_default_stale_setting(tmp_path: Path) -> None:
    # factor 2 and at least 100 s: "fast" (10 s interval) goes stale after 100 s, "slow" (80 s) after 160 s;
    # the old factor of 3 in status would have said 30 s and 240 s.
    config = _site(tmp_path / "a.db", [("fast", "paper", 10.0), ("slow", "paper", 80.0)], rooms=["paper"],
                   alerts={"stale": {"factor": 2, "min_timeout_s": 100}})
    _store(config, [Reading("fast", "temperature", 20.0, T0, "paper"),
                    Reading("slow", "temperature", 20.0, T0, "paper")])
    for age_s in (50, 99, 101, 159, 161, 250):
        now = T0 + age_s * 1000
        status = {s["sensor"]: s["state"] for s in status_report(config, now=now)["sensors"]}
        engine = AlertEngine(config, AlertStore(":memory:"))
        engine.advance(T0)
        engine.feed(Reading("fast", "temperature", 20.0, T0, "paper"))
        engine.feed(Reading("slow", "temperature", 20.0, T0, "paper"))
        engine.advance(now)
        judged_stale = {row["sensor"] for row in engine.store.alerts() if row["rule"] == "stale"}
        assert {s for s, state in status.items() if state == "stale"} == judged_stale, age_s
    assert judged_stale == {"fast", "slow"}  # at 250 s both (so the loop saw both sides of each limit)


@pytest.fixture
def big_site(tmp_path: Path) -> Config:
    """300 sensors in 6 rooms; 290 report, 6 are silent for long, 4 never reported."""
    rooms = [f"room{r}" for r in range(6)]
    sensors = [(f"s{i:03d}", rooms[i % 6], 60.0) for i in range(300)]
    config = _site(tmp_path / "big.db", sensors, rooms=rooms)
    now = T0 + 3_600_000
    readings = []
    for i, (sid, room, _) in enumerate(sensors[:296]):
        ts = now - (30_000 if i < 290 else 3_000_000)
        readings += [Reading(sid, "temperature", 18.0 + i % 5, ts, room),
                     Reading(sid, "humidity", 50.0 + i % 7, ts, room)]
    _store(config, readings)
    return config


def test_hundreds_of_sensors_get_a_line_per_room_and_the_ones_that_need_attention(big_site: Config) -> None:
    report = status_report(big_site, now=T0 + 3_600_000)
    text = format_status(report)
    lines = text.splitlines()
    assert len(lines) < 60  # not one line per sensor
    assert "sensors  300: 290 ok, 6 stale, 4 never, 0 offline" in text
    for room in range(6):
        assert re.search(rf"^room{room}\s+50\s+", text, re.MULTILINE), text
    attention = [line for line in lines if re.match(r"s\d{3} ", line)]
    assert sorted(line.split()[0] for line in attention) == [f"s{i}" for i in range(290, 300)]
    assert "--all lists every sensor" in text
    full = format_status(report, full=True)
    assert len([line for line in full.splitlines() if re.match(r"s\d{3} ", line)]) == 300
    one_room = format_status(report, room="room0")
    assert len([line for line in one_room.splitlines() if re.match(r"s\d{3} ", line)]) == 50


def test_every_time_shown_is_in_the_site_zone_with_its_offset(big_site: Config) -> None:
    report = status_report(big_site, now=T0 + 3_600_000)
    text = format_status(report, full=True)
    assert "times in Asia/Shanghai (UTC+08:00)" in text
    assert "now 2026-01-01 09:00:00+08:00" in text
    assert re.search(r"^s000 +room0 +ok +2026-01-01 08:59:30\+08:00 ", text, re.MULTILINE)
    times = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S*", text)
    assert times and all(t.endswith("+08:00") for t in times)
    sensor = next(s for s in report["sensors"] if s["sensor"] == "s000")
    assert sensor["last_seen_local"] == "2026-01-01T08:59:30.000+08:00"
    assert sensor["last_seen"] == "2026-01-01T00:59:30.000Z"


def test_a_small_site_lists_every_sensor(tmp_path: Path) -> None:
    config = _site(tmp_path / "s.db", [(f"s{i}", "paper", 60.0) for i in range(FULL_LIST_MAX)], rooms=["paper"])
    _store(config, [Reading("s0", "temperature", 20.0, T0, "paper")])
    text = format_status(status_report(config, now=T0 + 1000))
    assert len([line for line in text.splitlines() if re.match(r"s\d+ ", line)]) == FULL_LIST_MAX


def test_a_serial_source_shows_what_it_holds_not_yet_stored(tmp_path: Path) -> None:
    config = _site(tmp_path / "s.db", [("s0", "paper", 60.0)], rooms=["paper"])
    store = SqliteStore(config.storage.sqlite_path, tz=ZoneInfo("Asia/Shanghai"))
    try:
        batch = Batch()
        batch.gauges.update({"service.running": (1, T0), "source.bus.connected": (1, T0),
                             "source.bus.buffered": (7, T0)})
        store.write(batch)
    finally:
        store.close()
    report = status_report(config, now=T0 + 1000)
    assert [(s["source"], s["state"], s["buffered"]) for s in report["sources"]] == [("bus", "connected", 7)]
    assert "sources  bus connected (7 buffered, not stored yet)" in format_status(report)


def test_an_outage_lists_a_few_sensors_per_room_and_counts_the_rest(tmp_path: Path) -> None:
    """The broker is down for an hour: all 300 sensors are stale; the view stays a screen, not 321 lines."""
    from dashboards.status import ATTENTION_PER_ROOM

    rooms = [f"room{r}" for r in range(6)]
    sensors = [(f"s{i:03d}", rooms[i % 6], 60.0) for i in range(300)]
    config = _site(tmp_path / "big.db", sensors, rooms=rooms)
    _store(config, [Reading(s, "temperature", 20.0, T0, r) for s, r, _ in sensors])
    text = format_status(status_report(config, now=T0 + 3_600_000))
    lines = text.splitlines()
    listed = [line for line in lines if re.match(r"s\d{3} ", line)]
    assert len(listed) == 6 * ATTENTION_PER_ROOM
    for room in rooms:
        assert f"… and {50 - ATTENTION_PER_ROOM} more in {room} ({50 - ATTENTION_PER_ROOM} stale; --room {room} " \
               "lists them)" in text
    assert len(lines) < 100
    assert "sensors that need attention (300 of 300)" in text
    one_room = format_status(status_report(config, now=T0 + 3_600_000), room="room0")
    assert len([line for line in one_room.splitlines() if re.match(r"s\d{3} ", line)]) == 50  # --room: all


def _gauges(config: Config, gauges: dict[str, tuple[int, int]], counters: dict[str, int] | None = None) -> None:
    store = SqliteStore(config.storage.sqlite_path, tz=ZoneInfo("Asia/Shanghai"))
    try:
        batch = Batch()
        batch.gauges.update(gauges)
        batch.counters.update(counters or {})
        store.write(batch)
    finally:
        store.close()


def test_the_alert_numbers_people_read_are_shown_zeros_included_and_internals_only_in_json(tmp_path: Path) -> None:
    config = _site(tmp_path / "s.db", [("s0", "paper", 60.0)], rooms=["paper"])
    # alerts.series added up by an older archmon (3 after two restarts), a state now
    _gauges(config, {"service.running": (1, T0), "alerts.series": (1, T0), "alerts.window_bytes": (4096, T0),
                     "alerts.state_write_max_us": (250, T0)},
            {"alerts.readings_judged": 12, "alerts.series": 3})
    report = status_report(config, now=T0 + 1000)
    alerts_line = next(line for line in format_status(report).splitlines() if line.startswith("alerts"))
    assert alerts_line == ("alerts   0 open; readings_judged 12, late_readings 0, late_for_alerts 0, late_alarms 0, "
                           "late_for_day 0")
    assert report["alerts"]["gauges"] == {"series": 1, "window_bytes": 4096, "state_write_max_us": 250}
    assert "series" not in report["alerts"]["counters"]  # the old sum is not shown as a count


@pytest.mark.parametrize(("gauges", "said"), [
    ({"http.enabled": 1, "http.serving": 1, "http.port": 8080}, "; dashboard on port 8080"),
    ({"http.enabled": 1, "http.serving": 0, "http.port": 8080}, "; dashboard NOT SERVED (its address could not be "
                                                                 "used, see the log)"),
    ({"http.enabled": 0, "http.serving": 0, "http.port": 0}, "; dashboard off"),
])
def test_status_says_whether_the_dashboard_is_served(tmp_path: Path, gauges: dict[str, int], said: str) -> None:
    config = _site(tmp_path / "s.db", [("s0", "paper", 60.0)], rooms=["paper"])
    _gauges(config, {"service.running": (1, T0), **{k: (v, T0) for k, v in gauges.items()}})
    service_line = format_status(status_report(config, now=T0 + 1000)).splitlines()[2]
    assert service_line.startswith("service  running") and service_line.endswith(said)
    stopped = status_report(config, now=T0 + 3_600_000)  # not running: nothing said of a dashboard
    assert stopped["dashboard"] is None


def test_an_import_only_sensor_is_imported_never_stale_in_status_and_on_the_overview(tmp_path: Path) -> None:
    config = _site(tmp_path / "a.db", [("live", "paper", 60.0)], rooms=["paper"])
    config = parse_config({**config.model_dump(mode="json", exclude_none=True),
                           "sensors": [*config.model_dump(mode="json", exclude_none=True)["sensors"],
                                       {"id": "logger", "room": "paper", "source": "import"}]})
    _store(config, [Reading("live", "temperature", 20.0, T0, "paper"),
                    Reading("logger", "temperature", 21.0, T0, "paper")])
    report = status_report(config, now=T0 + 30 * 86_400_000)  # a month later: both silent since
    states = {s["sensor"]: s["state"] for s in report["sensors"]}
    assert states == {"live": "stale", "logger": "imported"}
    assert report["rooms"][0]["stale"] == 1 and report["rooms"][0]["imported"] == 1
    assert "1 stale, 0 never, 0 offline, 1 imported" in format_status(report)
