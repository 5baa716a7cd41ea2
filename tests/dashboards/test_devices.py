"""The room page lists the room's climate devices: state and since when (from the switch log), run time in
the page's range, an active manual override, in the page's language."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.control import ControlRecords
from alerts.control.records import SwitchRow
from archmon.timeutil import now_ms
from tests.dashboards.site import CONFIG, Site, sensor_tables

HOUR = 3_600_000
ACTUATORS = """
[[actuators]]
id = "dehum1"
room = "A1"
name_zh = "去湿机 1"
name_en = "Dehumidifier 1"
kind = "zigbee2mqtt"
source = "broker"
topic = "zigbee2mqtt/plug-dehum1"
controls = "humidity_down"

[[actuators]]
id = "ac2"
room = "A2"
name_zh = "空调"
kind = "tasmota"
source = "broker"
topic = "plug-ac2"
controls = "temperature_down"
start_at = 14.8
stop_at = 13.5
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    running = Site(tmp_path, config_text=CONFIG.replace("{sensors}", sensor_tables()) + ACTUATORS)
    try:
        yield running
    finally:
        running.close()


def test_the_room_page_shows_its_devices(site: Site) -> None:
    with site.client("viewer") as client:
        before = client.get("/rooms/A1").text
    assert "去湿机 1" in before and "状态未知" in before  # configured, nothing switched yet
    now = now_ms()
    records = ControlRecords(site.db)
    try:
        records.record(now - 3 * HOUR, "dehum1", "system", {"event": "confirmed"},
                       switch=SwitchRow("dehum1", now - 3 * HOUR, True, "command", "system", "demand"))
        records.record(now - 1 * HOUR, "dehum1", "system", {"event": "confirmed"},
                       switch=SwitchRow("dehum1", now - 1 * HOUR, False, "command", "system", "satisfied"))
        records.set_override("dehum1", False, now - 60_000, now + 2 * HOUR, "张三", "更换滤网")
    finally:
        records.close()
    with site.client("viewer") as client:
        html = client.get("/rooms/A1").text
        other_room = client.get("/rooms/A2").text
        client.cookies.set("archmon_lang", "en")
        english = client.get("/rooms/A1").text
    panel = html[html.index('id="device-dehum1"'):]
    panel = panel[:panel.index("</li>")]
    assert "停止" in panel and "运行 2.0 h" in panel  # on for two of the last 24 hours
    assert "人工控制" in panel and "张三" in panel and "更换滤网" in panel
    assert "去湿机 1" not in other_room and "空调" in other_room
    english = english[english.index('id="device-dehum1"'):]
    assert "Dehumidifier 1" in english[:600] and "OFF" in english[:600] and "Manual override" in english[:600]
