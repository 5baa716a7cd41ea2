"""Pages and API against the real app: what a keeper reads, chart data from rollups, adoption, languages."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from alerts.control.records import ControlRecords, SwitchRow
from archmon.config import load_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.records import Batch
from dashboards.web.i18n import catalogue
from tests.dashboards.site import CONFIG, Site, csrf_of, sensor_tables

HOUR = 3_600_000


def test_both_catalogues_have_the_same_keys_and_no_empty_text() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    assert set(zh) == set(en)
    assert all(v.strip() for v in [*zh.values(), *en.values()])


def test_the_overview_says_in_words_what_is_wrong_and_puts_it_first(site: Site) -> None:
    site.history(6, 10)
    now = now_ms()
    site.store_readings([Reading("T2", "temperature", 17.5, now, "A2"), Reading("S1", "smoke", 1.0, now, "A1")])
    with site.client("viewer") as client:
        html = client.get("/").text
        rooms = json.loads(client.get("/api/rooms").text)
    order = [html.index(f'id="room-{r}"') for r in ("A1", "A2", "B1")]
    assert order == sorted(order)  # both alarms before the room that is fine
    a2 = html[html.index('id="room-A2"'):html.index('id="room-B1"')]
    assert "17.5" in a2 and "偏高" in a2 and "告警" in a2  # value, position and status in words
    a1 = html[html.index('id="room-A1"'):html.index('id="room-A2"')]
    assert "烟感 报警" in a1 and "检测到烟雾" in a1
    by_room = {r["room"]: r for r in rooms}
    assert by_room["A1"]["smoke"] is True and by_room["A1"]["guards"]["fire"] == "alarm"
    assert by_room["A2"]["quantities"][0]["position"] == "high"
    assert by_room["B1"]["status"] == "ok" and by_room["B1"]["guards"]["dust"] == "unmonitored"
    with site.client("viewer") as client:
        assert 'id="room-B1"' not in client.get("/?attention=1").text
        assert 'id="room-B1"' in client.get("/?q=特藏").text and 'id="room-A1"' not in client.get("/?q=特藏").text


def test_a_year_of_minute_data_reaches_the_browser_as_a_few_thousand_points_from_rollups(site: Site) -> None:
    end = now_ms()
    start = end - 365 * 24 * HOUR
    batches = []
    for day in range(365):  # one reading a minute, every minute of a year, through the real store
        base = start + day * 24 * HOUR
        batches.append(Batch(readings=[Reading("T3", "temperature", 16 + (i % 120) / 60, base + i * 60_000, "B1")
                                       for i in range(1440)]))
        if len(batches) == 30:
            site.store.write_many(batches)
            batches = []
    site.store.write_many(batches)
    assert site.store.count_readings("T3", "temperature") == 525_600
    with site.client("viewer") as client:
        data = client.get("/api/rooms/B1/series?quantity=temperature&range=1y&width=1500").json()
        day = client.get("/api/rooms/B1/series?quantity=temperature&range=24h&width=800").json()
    assert data["resolution"] == "hour" and day["resolution"] == "raw"
    assert len(data["x"]) <= 1500 and data["points"] <= 3 * 1500
    series = data["series"][0]
    assert min(v for v in series["min"] if v is not None) == 16.0  # the envelope keeps the extremes
    assert max(v for v in series["max"] if v is not None) == 17.98
    assert len(day["x"]) <= 800 and all(v is not None for v in day["series"][0]["mean"][1:-1])
    assert data["band"] == {"low": 14.0, "high": 20.0}


def test_the_room_page_reads_without_javascript(site: Site) -> None:
    site.history(24, 10)
    site.register.open_session("A1", ["甲", "乙"], "查阅", "审-1", "oper")
    with site.client("viewer") as client:
        html = client.get("/rooms/A1").text
        year = client.get("/rooms/A1?range=1y").text
    assert "数据表" in html and html.count("<tr>") > 50  # the table view holds the chart's data
    assert "露点" in html and "限值 14.0–24.0" in html
    assert "甲, 乙" in html and "审-1" in html  # the access session listed with the events
    assert "小时汇总" in year


def test_adopting_an_unassigned_device_writes_the_config_with_a_backup_and_reloads(site: Site) -> None:
    site.store_unassigned("zigbee2mqtt/new_th")
    original = site.config_path.read_text(encoding="utf-8")
    with site.client("oper") as oper:
        page = oper.get("/sensors")
        assert "zigbee2mqtt/new_th" in page.text and 'action="/sensors/adopt"' not in page.text  # admins only
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/sensors").text)
        taken = admin.post("/sensors/adopt", data={"source": "broker", "device_topic": "zigbee2mqtt/new_th",
                                                   "sensor_id": "T1", "room": "A1", "kind": "temperature_humidity",
                                                   "csrf": token})
        assert "error=adopt_id_taken" in taken.headers["location"]
        assert "传感器编号 T1 已被占用" in admin.get(taken.headers["location"]).text
        done = admin.post("/sensors/adopt", data={"source": "broker", "device_topic": "zigbee2mqtt/new_th",
                                                  "sensor_id": "T9", "room": "B1", "kind": "temperature_humidity",
                                                  "csrf": token})
        assert done.status_code == 303 and "adopted=T9" in done.headers["location"]
        assert "T9" in admin.get("/sensors").text
    backups = list(site.dir.glob("archmon.toml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == original
    config = load_config(site.config_path)
    adopted = next(s for s in config.sensors if s.id == "T9")
    assert (adopted.room, adopted.topic, adopted.format) == ("B1", "zigbee2mqtt/new_th", "zigbee2mqtt")
    assert len(site.reloads) == 1 and any(s.id == "T9" for s in site.reloads[0].sensors)
    assert tomllib.loads(site.config_path.read_text(encoding="utf-8"))["site"]["name"] == "测试档案馆"


def test_users_page_creates_resets_and_changes_roles(site: Site) -> None:
    with site.client("admin") as admin:
        token = csrf_of(admin.get("/users").text)
        short = admin.post("/users", data={"name": "li", "role": "operator", "password": "short", "password2": "short",
                                           "csrf": token})
        assert short.headers["location"] == "/users?error=user_password_short&e_n=10"
        assert "密码太短：至少 10 个字符" in admin.get(short.headers["location"]).text  # in the reader's language
        admin.post("/users", data={"name": "li", "role": "operator", "password": "long-enough-1",
                                   "password2": "long-enough-1", "csrf": token})
        admin.post("/users/li/role", data={"role": "viewer", "csrf": token})
        self_demote = admin.post("/users/admin/role", data={"role": "viewer", "csrf": token})
        assert "error" in self_demote.headers["location"]
    user = site.ctx.users.get("li")
    assert user is not None and user.role == "viewer"
    with site.client("oper") as oper:
        assert oper.get("/users").status_code == 403


def test_language_is_per_user_and_chinese_by_default(site: Site) -> None:
    with site.client("viewer") as client:
        home = client.get("/")
        assert "库房总览" in home.text and 'lang="zh-CN"' in home.text
        client.post("/account/language", data={"language": "en", "csrf": csrf_of(home.text), "next": "/alerts"})
        assert "Alerts" in client.get("/alerts").text
    assert site.ctx.users.get("viewer").language == "en"
    with site.client("oper") as other:
        assert "库房总览" in other.get("/").text  # another user keeps the site's language


def test_an_import_only_logger_is_neither_stale_nor_a_live_value_on_the_overview_and_sensors_page(
        tmp_path: Path) -> None:
    config_text = CONFIG.replace("{sensors}", sensor_tables() + '[[sensors]]\nid = "LOG1"\nroom = "B1"\n'
                                 'source = "import"\n')
    site = Site(tmp_path, config_text=config_text)
    try:
        month_ago = now_ms() - 30 * 86_400_000
        site.store_readings([Reading("LOG1", "temperature", 19.0, month_ago, "B1")])
        with site.client("viewer") as client:
            rooms = {r["room"]: r for r in json.loads(client.get("/api/rooms").text)}
            sensors_html = client.get("/sensors").text
        assert "LOG1" not in rooms["B1"]["stale"]  # silent for a month, and rightly so
        row = sensors_html[sensors_html.index('id="sensor-LOG1"'):]
        assert 'class="sensor-imported"' in row[:200] and "仅导入" in row[:row.index("</tr>")]
    finally:
        site.close()


def test_room_profiles_are_resolved_once_per_configuration_and_follow_a_reload(site: Site) -> None:
    first = site.ctx.room_profiles()
    assert first["A1"].id == "paper" and site.ctx.room_profiles() is first  # not resolved again per request
    text = site.config_path.read_text(encoding="utf-8")
    site.config_path.write_text(text.replace('name_en = "Store 1"\nprofile = "paper"',
                                             'name_en = "Store 1"\nprofile = "film_master"'), encoding="utf-8")
    site.ctx.config = load_config(site.config_path)  # what the service's reload does (archmon/app/web.py)
    assert site.ctx.room_profiles()["A1"].id == "film_master"
    with site.client("viewer") as viewer:
        band = viewer.get("/api/rooms/A1/series?quantity=humidity&range=24h").json()["band"]
    film = site.ctx.room_profiles()["A1"].humidity
    assert (band["low"], band["high"]) == (film.low, film.high)


def test_the_room_chart_marks_when_the_climate_control_devices_ran(tmp_path: Path) -> None:
    actuator = ('[[actuators]]\nid = "dehum1"\nroom = "A1"\nkind = "modbus"\ndevice = "/dev/null"\naddress = 1\n'
                'coil = 0\ncontrols = "humidity_down"\nsensors = ["T1"]\nstart_at = 55\nstop_at = 50\n')
    site = Site(tmp_path, config_text=CONFIG.replace("{sensors}", sensor_tables() + actuator))
    try:
        now = now_ms()
        site.history(6, 10)
        switches = [(now - 5 * HOUR, True), (now - 4 * HOUR, False), (now - 2 * HOUR, True)]  # still on now
        records = ControlRecords(site.db)
        try:
            for ts, on in [(now - 30 * HOUR, True), (now - 26 * HOUR, False), *switches]:  # the first run: too old
                records.record(ts, "dehum1", "system", {"event": "confirmed", "state": "on" if on else "off"},
                               switch=SwitchRow("dehum1", ts, on, "command", "system", "demand"))
        finally:
            records.close()
        with site.client("viewer") as client:
            data = client.get("/api/rooms/A1/series", params={"quantity": "humidity", "range": "24h"}).json()
            page = client.get("/rooms/A1").text
        runs = [(r["actuator"], r["start"] * 1000, r["end"] and r["end"] * 1000) for r in data["events"]["runs"]]
        assert runs == [("dehum1", now - 5 * HOUR, now - 4 * HOUR), ("dehum1", now - 2 * HOUR, None)]
        assert "设备运行" in page  # the chart's legend names the strip
    finally:
        site.close()
