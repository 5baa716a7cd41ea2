"""Chart and table data, overview cards of rooms with several sensors, and requests out of range."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.engine import AlertEngine
from alerts.store import AlertStore
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.records import Batch
from dashboards.web import queries
from dashboards.web.series import TABLE_SLOTS, table_edges
from tests.alerts.helpers import SHANGHAI_NOON, site_config
from tests.dashboards.site import CONFIG, SENSORS, Site, csrf_of, sensor_tables

HOUR = 3_600_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _local(ts: int, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts / 1000, tz)


@pytest.mark.parametrize("span, minutes", [(s, m) for s, (_, m) in TABLE_SLOTS.items()])
@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/St_Johns", "Europe/Berlin"])
def test_table_rows_are_local_calendar_slots(span: str, minutes: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    end = 1_711_857_600_000 + 37 * 60_000  # 2024-03-31 04:37 +02:00 in Berlin, just after its DST change
    edges = table_edges(span, end, tz)
    rows, _ = TABLE_SLOTS[span]
    assert len(edges) == rows + 1 and edges == sorted(set(edges))
    assert edges[-2] <= end < edges[-1]  # the last row holds now
    for edge in edges:
        local = _local(edge, tz)
        assert (local.hour * 60 + local.minute) % minutes == 0 and local.second == 0, local
    if span == "1y" and zone == "Europe/Berlin":
        lengths = {b - a for a, b in itertools.pairwise(edges)}
        assert 23 * HOUR in lengths and lengths <= {23 * HOUR, 24 * HOUR, 25 * HOUR}  # local days across DST


def test_the_room_pages_table_starts_rows_at_local_midnight_and_six_hours(site: Site) -> None:
    site.history(24 * 32, 60)
    with site.client("viewer") as client:
        year = client.get("/rooms/A1?range=1y").text
        month = client.get("/rooms/A1?range=30d").text
    table = year.split('id="table"')[1]
    assert "每天一行（本地自然日）" in table
    times = [cell.split("</td>")[0] for cell in table.split("<tr><td>")[1:]]
    assert len(times) >= 32 and all(t.endswith("00:00 +08:00") for t in times)
    times = [cell.split("</td>")[0] for cell in month.split('id="table"')[1].split("<tr><td>")[1:]]
    assert len(times) >= 100 and {t[11:16] for t in times} == {"00:00", "06:00", "12:00", "18:00"}


def test_chart_markers_keep_the_newest_alerts(tmp_path: Path) -> None:
    config = site_config(tmp_path, alerts={"close_after_s": 0, "rules": {"stale": {"enabled": False}}})
    store = AlertStore(tmp_path / "archmon.db")
    engine = AlertEngine(config, store)
    try:
        for i in range(5):  # five smoke alerts, each closed before the next
            engine.feed(Reading("S1", "smoke", 1.0, SHANGHAI_NOON + i * HOUR, "A1"))
            engine.feed(Reading("S1", "smoke", 0.0, SHANGHAI_NOON + i * HOUR + 60_000, "A1"))
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "archmon.db")
    try:
        marks = queries.alert_markers(conn, "A1", SHANGHAI_NOON - HOUR, SHANGHAI_NOON + 10 * HOUR, limit=3)
    finally:
        conn.close()
    assert [m["ts_ms"] for m in marks] == [SHANGHAI_NOON + i * HOUR for i in (2, 3, 4)]  # newest, oldest first


def test_out_of_range_numbers_and_wrong_types_are_refused_not_500(site: Site) -> None:
    site.history(2, 10)
    with site.client("oper") as client:
        token = csrf_of(client.get("/").text)
        assert client.get("/alerts?page=100000000000000000000").status_code == 200
        assert client.get("/api/alerts?page=100000000000000000000").json()["alerts"] == []
        for query in ("start=100000000000000000000&end=100000000000000001000", "start=-1&end=5",
                      "start=5&end=5", "start=1e20"):
            refused = client.get(f"/api/rooms/A1/series?{query}")
            assert refused.status_code == 400 and refused.json()["code"] in ("series_span", "series_range"), query
        assert client.get("/api/rooms/A1/series?width=-5").status_code == 200  # clamped to 10 slots
        headers = {"X-CSRF-Token": token}
        objects = {"room": "A2", "people": [{"x": 1}, {"y": 2}], "purpose": "p", "approval": "n"}
        bodies = [(objects, "access_bad_people"),
                  ({"room": "A2", "people": ["a", "b"], "purpose": ["p"], "approval": "n"}, "bad_field"),
                  ({"room": ["A2"]}, "bad_field"), ({}, "access_unknown_room")]
        for body, code in bodies:
            refused = client.post("/api/access", json=body, headers=headers)
            assert (refused.status_code, refused.json()["code"]) == (400, code), body
        assert client.post("/api/access", content=b"[" * 100_000, headers=headers).status_code == 400
        assert site.register.sessions() == []
        one_string = client.post("/api/access", json={"room": "A2", "people": "张三、李四", "purpose": "p",
                                                      "approval": "n"}, headers=headers)
        assert one_string.status_code == 201 and one_string.json()["people"] == ["张三", "李四"]
        closed = client.post("/api/access/999/close", json={}, headers=headers)
        assert (closed.status_code, closed.json()["code"]) == (404, "access_unknown_session")
        ack = client.post("/api/alerts/999/ack", json={"comment": "x"}, headers=headers)
        assert (ack.status_code, ack.json()["code"]) == (404, "ack_unknown")


def test_a_room_with_several_sensors_shows_the_spread_and_the_widest_24h_range(tmp_path: Path) -> None:
    sensors = [*SENSORS, ("T1b", "A1", "temperature_humidity")]
    site = Site(tmp_path, config_text=CONFIG.replace("{sensors}", sensor_tables(sensors)))
    try:
        now = now_ms()
        hour = now - now % HOUR
        site.store.write_many([Batch(readings=[
            Reading("T1", "temperature", 19.0, hour - 2 * HOUR, "A1"), Reading("T1", "temperature", 20.0, now, "A1"),
            Reading("T1b", "temperature", 19.0, hour - 3 * HOUR, "A1"), Reading("T1b", "temperature", 22.0, now, "A1"),
            Reading("T2", "temperature", 10.0, hour - 3 * HOUR, "A2"), Reading("T2", "temperature", 15.0, now, "A2"),
        ])])
        with site.client("viewer") as client:
            rooms = {r["room"]: r for r in client.get("/api/rooms").json()}
            html = client.get("/").text
        temperature = rooms["A1"]["quantities"][0]
        assert (temperature["value_min"], temperature["value_max"], temperature["range_24h"]) == (20.0, 22.0, 3.0)
        assert rooms["A2"]["quantities"][0]["range_24h"] == 5.0  # another room's sensors do not count
        assert "20.0–22.0 ℃" in html
    finally:
        site.close()
