"""Messages: bilingual, value against the limit, times in the site's zone with offset, SMS within two parts."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from alerts.notify.outbox import Delivery
from alerts.notify.render import Renderer
from archmon.sms_pdu import split_text

ROOMS = {"A1": ("一号库房", "Room 1"), "A2": ("二号库房", "Room 2")}
NOON = 1_709_524_800_000  # 2024-03-04 12:00 +08:00


def _delivery(i: int, *, kind: str = "fired", rule: str = "band", language: str = "zh", room: str = "A1",
              **payload: object) -> Delivery:
    data = {"ts": "2024-03-04T04:00:00.000Z", "rule": rule, "room": room, "sensor": f"T{i}",
            "quantity": "humidity", "value": 72.5, "limit": 60.0, "detail": "high", **payload}
    return Delivery(i, i, i, kind, "major", "all", 0, "modem", "+86138", "zhang", (), language, "all:alert",
                    json.loads(json.dumps(data)), "queued", NOON, 0, 0, False)


def _renderer(alerts: dict[int, dict] | None = None) -> Renderer:
    return Renderer("市档案馆", ZoneInfo("Asia/Shanghai"), ROOMS, lambda i: (alerts or {}).get(i), 2)


def test_one_alert_in_chinese_and_english() -> None:
    zh = _renderer({1: {"active_ms": NOON - 3_600_000}}).render([_delivery(1)])
    assert zh.subject == "【告警·严重】#1 一号库房 T1：相对湿度高于上限 60 %RH"
    assert "当前 72.5 %RH（限值 60 %RH）" in zh.text
    assert "开始于 2024-03-04 11:00 +08:00" in zh.text  # since the alert became active, in the site's zone
    assert "站点: 市档案馆" in zh.text and "回复 1 或“确认 1”确认" in zh.short
    en = _renderer().render([_delivery(1, language="en")])
    assert en.subject == "[ALERT MAJOR] #1 Room 1 T1: relative humidity above the upper limit 60 %RH"
    assert "Value 72.5 %RH (limit 60 %RH)" in en.text and "Since 2024-03-04 12:00 +08:00" in en.text
    assert en.data["alerts"][0]["since"] == "2024-03-04 12:00 +08:00"


def test_a_big_group_keeps_its_sms_within_two_parts_and_counts_the_rest() -> None:
    batch = [_delivery(i, rule="stale", quantity=None, value=None, room="A1" if i % 2 else "A2")
             for i in range(1, 31)]
    message = _renderer().render(batch)
    assert message.subject == "【告警·严重】30 个传感器离线，涉及 2 个库房："
    assert len(split_text(message.short)[1]) <= 2
    assert "…等另" in message.short and message.short.endswith("回复 1 确认以上全部")
    assert message.text.count("\n#") == 30  # the e-mail lists them all
    assert message.alert_ids == tuple(range(1, 31))


def test_binary_quantities_show_no_value_line_and_recovery_says_when() -> None:
    smoke = _renderer().render([_delivery(3, rule="smoke", quantity="smoke", value=1.0, limit=None, detail="")])
    assert "当前" not in smoke.text and smoke.subject.startswith("【告警·严重】#3 一号库房 T3：检测到烟雾！")
    back = _renderer().render([_delivery(4, kind="recovered", ts="2024-03-04T04:30:00Z")])
    assert back.subject.startswith("【已恢复】#4") and "恢复于 2024-03-04 12:30 +08:00" in back.text
    assert "回复" not in back.short  # nothing to acknowledge


def test_the_possible_duplicate_mark_is_within_the_sms_length_goal() -> None:
    from dataclasses import replace

    for n in range(1, 40):
        batch = [replace(_delivery(i, rule="stale", quantity=None, value=None), possible_duplicate=True)
                 for i in range(1, n + 1)]
        message = _renderer().render(batch)
        assert len(split_text(message.short).parts) <= 2, n
        assert "（可能重复发送）" in message.short and message.subject.endswith("（可能重复发送）")


def test_a_group_lists_each_alert_once_and_counts_alerts() -> None:
    from dataclasses import replace

    batch = [_delivery(1, rule="stale", quantity=None, value=None), _delivery(2, rule="stale", quantity=None,
                                                                               value=None)]
    batch.append(replace(_delivery(3, rule="stale", quantity=None, value=None, kind="repeat"), alert_id=1))
    message = _renderer().render(batch)
    assert message.subject == "【告警·严重】2 个传感器离线，涉及 1 个库房："
    assert message.alert_ids == (2, 1) and message.text.count("\n#") == 2


def test_a_multiline_detail_makes_one_line_subjects() -> None:
    detail = "HTTP 502 <html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>"
    message = _renderer().render([_delivery(5, rule="channel", sensor="hook", quantity=None, value=None,
                                            detail=detail, room="")])
    assert message.subject == ("【告警·严重】#5 通知通道 hook 故障：HTTP 502 <html> <head><title>502 Bad Gateway"
                               "</title></head> </html>")
