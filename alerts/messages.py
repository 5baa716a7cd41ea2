"""Bilingual alert titles (Chinese and English): a small message catalogue keyed by rule and detail."""

from __future__ import annotations

from collections.abc import Mapping

from alerts.model import Condition

__all__ = ["QUANTITY_NAMES", "SEVERITY_NAMES", "STATE_NAMES", "UNITS", "title"]

QUANTITY_NAMES: dict[str, tuple[str, str]] = {
    "temperature": ("温度", "temperature"),
    "humidity": ("相对湿度", "relative humidity"),
    "smoke": ("烟雾", "smoke"),
    "door": ("门", "door"),
    "leak": ("漏水", "water leak"),
    "light": ("光照", "light"),
    "uv": ("紫外线", "UV"),
    "battery": ("电池", "battery"),
}

STATE_NAMES: dict[str, tuple[str, str]] = {
    "pending": ("待触发", "pending"),
    "active": ("告警中", "active"),
    "acknowledged": ("已确认", "acknowledged"),
    "cleared": ("已恢复", "cleared"),
    "closed": ("已关闭", "closed"),
    "cancelled": ("已撤销", "cancelled"),
}

SEVERITY_NAMES: dict[str, tuple[str, str]] = {
    "critical": ("紧急", "critical"),
    "major": ("重要", "major"),
    "minor": ("次要", "minor"),
    "warning": ("提示", "warning"),
}

# units of the limits named in titles (a limit of another quantity is shown bare)
UNITS: dict[str, str] = {"temperature": "℃", "humidity": "%RH"}

_TITLES: dict[str, tuple[str, str]] = {
    "band/low": ("{where}{q_zh}低于下限 {limit}", "{where}{q_en} below the lower limit {limit}"),
    "band/high": ("{where}{q_zh}高于上限 {limit}", "{where}{q_en} above the upper limit {limit}"),
    "stability": ("{where}{q_zh}日波动超限（每昼夜 ≤ {limit}）", "{where}daily {q_en} fluctuation over {limit}"),
    "stability_24h": ("{where}{q_zh} 24 小时波动超限（≤ {limit}）",
                      "{where}{q_en} fluctuation over {limit} in the last 24 h"),
    "rate": ("{where}{q_zh}变化过快", "{where}{q_en} changing too fast"),
    "mould": ("{where}霉变风险：相对湿度 ≥ {limit}", "{where}mould risk: humidity ≥ {limit}"),
    "stale": ("{where}传感器离线/无数据", "{where}sensor offline / no data"),
    "battery": ("{where}电池电量低", "{where}battery low"),
    "stuck": ("{where}{q_zh}读数长时间不变（传感器疑似故障）", "{where}{q_en} reading stuck"),
    "smoke": ("{where}检测到烟雾！", "{where}SMOKE detected!"),
    "leak": ("{where}检测到漏水！", "{where}WATER LEAK detected!"),
    "door_open": ("{where}库房门长时间未关", "{where}door left open"),
    "door_hours": ("{where}非工作时间开门", "{where}door opened outside working hours"),
    "unregistered_entry": ("{where}未登记进入库房（三不查阅）", "{where}door opened with no registered access session"),
    "forwarding/backlog": ("{where}数据转发积压：远端时序数据库未及时接收，读数暂存本地待发",
                           "{where}forwarding backlog: the remote database is not taking readings; they wait locally"),
    "forwarding/full": ("{where}转发队列已满：新读数仅保存在本地，队列腾空后自动补发",
                        "{where}forwarding outbox full: new readings are kept locally, queued again once it drains"),
    "forwarding/refused": ("{where}远端拒收读数：已移入转发隔离区（archmon forward requeue 可重新发送）",
                           "{where}the remote refused readings: kept in the forward quarantine "
                           "(archmon forward requeue sends them again)"),
    "calibration_due/due_soon": ("{where}仪器校准即将到期", "{where}instrument calibration due soon"),
    "calibration_due/overdue": ("{where}仪器校准已过期", "{where}instrument calibration overdue"),
    "calibration_due/uncalibrated": ("有仪器没有校准记录（见传感器页）",
                                     "instruments without a calibration record (see the sensors page)"),
    "actuator/not_responding": ("{where}调控设备无响应（命令未得到确认）", "{where}actuator not responding"),
    "actuator/no_effect": ("{where}调控设备运行但环境无改善", "{where}actuator running without effect"),
}


def title(condition: Condition, language: str,
          room_names: Mapping[str, tuple[str, str]] | None = None) -> tuple[str, str]:
    """Titles of the alert a condition drives.

    Args:
        condition: the condition.
        language: unused for the pair; kept so callers state which one they show first.
        room_names: room id -> ``(name_zh, name_en)`` as configured; the Chinese title names the room by
            ``name_zh``, the English one by ``name_en``, each falling back to the room id.

    Returns:
        ``(chinese, english)``.
    """
    del language
    key = f"{condition.rule}/{condition.detail}"
    zh, en = _TITLES.get(key) or _TITLES.get(condition.rule) or ("{where}告警 " + condition.rule,
                                                                   "{where}alert " + condition.rule)
    q_zh, q_en = QUANTITY_NAMES.get(condition.quantity or "", (condition.quantity or "", condition.quantity or ""))
    name_zh, name_en = (room_names or {}).get(condition.room, ("", ""))
    sensor = condition.sensor or ""
    where_zh = f"{name_zh or condition.room} {sensor}".strip()
    where_en = f"{name_en or condition.room} {sensor}".strip()
    limit = ""
    if condition.limit is not None:
        unit = UNITS.get(condition.quantity or "")
        limit = f"{condition.limit:g} {unit}" if unit else f"{condition.limit:g}"
    return (
        zh.format(where=f"{where_zh}：", q_zh=q_zh, limit=limit),
        en.format(where=f"{where_en}: ", q_en=q_en, limit=limit),
    )
