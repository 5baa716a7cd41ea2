"""Words of the printed report's climate-control section (issue 12), in Chinese and English; merged into
:data:`dashboards.reports.labels.LABELS` (same keys in both languages)."""

from __future__ import annotations

__all__ = ["CONTROL_LABELS"]

CONTROL_LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "control": "温湿度调控设备",
        "control_intro": "以下设备由 archmon 按库房标准范围自动开关（另有人工干预时记入审计日志）。运行时间与启动次数"
                         "取自设备状态确认记录；“保持在范围内”为该设备所跟随传感器的有记录的时间中所调控的温度或相对湿度处于标准范围内的比例。",
        "device": "设备",
        "controls": "调控方式",
        "controls_humidity_down": "除湿",
        "controls_humidity_up": "加湿",
        "controls_temperature_down": "降温",
        "controls_temperature_up": "升温",
        "setpoints": "开 / 关设定值",
        "followed": "跟随传感器",
        "run_hours": "运行时间",
        "starts": "启动次数",
        "commands_failures": "指令 / 无响应 / 人工干预",
        "held_band": "保持在范围内",
        "disabled": "（已停用）",
    },
    "en": {
        "control": "Climate control devices",
        "control_intro": "archmon switches these devices to keep the room inside its standard's band (manual "
                         "overrides are in the audit log). Run time and starts come from the devices' confirmed "
                         "switches; “held in band” is the share of the followed sensors' covered time that the "
                         "controlled quantity was inside the band.",
        "device": "Device",
        "controls": "Controls",
        "controls_humidity_down": "dehumidify",
        "controls_humidity_up": "humidify",
        "controls_temperature_down": "cool",
        "controls_temperature_up": "heat",
        "setpoints": "On / off at",
        "followed": "Follows",
        "run_hours": "Run time",
        "starts": "Starts",
        "commands_failures": "Commands / not responding / overrides",
        "held_band": "Held in band",
        "disabled": " (disabled)",
    },
}
"""The climate-control section's words."""
