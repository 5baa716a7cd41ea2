"""Words and number formats of the printed report and the register, in Chinese and English.

One catalogue per language with the same keys (``tests/dashboards/test_report_pdf.py`` checks that); the
printed documents look words up through :class:`PrintText`. Units follow the language: ``℃`` in Chinese
text (as the standards print it), ``°C`` in English.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dashboards.reports.control_labels import CONTROL_LABELS

__all__ = ["LABELS", "PrintText"]

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "report_title": "档案库房温湿度环境合规报告",
        "register_title": "档案库房温湿度登记表",
        "site": "单位",
        "period": "报告期间",
        "period_days": "{days} 天",
        "timezone": "时区",
        "rooms": "库房",
        "generated_at": "生成时间",
        "generated_by": "生成人",
        "pages": "页数",
        "pages_n": "共 {n} 页",
        "page_of": "第 {page} 页 / 共 {pages} 页",
        "standards": "执行标准与判定方法",
        "profile": "标准",
        "source": "依据",
        "band_t": "温度范围",
        "band_rh": "相对湿度范围",
        "stability": "24 小时稳定性（每昼夜波动）",
        "interp_A": "解释 A：当日最高值与最低值之差不超过限值（温度 {t}，相对湿度 {rh}）。",
        "interp_B": "解释 B：当日每个读数都在设定值（无设定值时为当日平均值）± 限值之内（温度 {t}，相对湿度 {rh}）。",
        "interp_none": "本标准不设 24 小时稳定性限值。",
        "integrity": "完整性",
        "data_digest": "报告数据 SHA-256",
        "audit_head": "生成时审计链末条",
        "verify_hint": "本文件的 SHA-256 已记入 archmon 审计日志；"
                       "用 archmon report verify 文件名 可核验文件是否未经改动。",
        "summary": "合格情况汇总",
        "criteria": "判定标准",
        "crit_completeness": "记录完整率 ≥ {pct} %",
        "crit_in_band": "温湿度在范围内的时间 ≥ {pct} %",
        "crit_stable": "数据充足的每一天均符合 24 小时稳定性",
        "crit_duty": "每天 {times} 的定时记录齐全",
        "crit_calibration": "仪器均在校准有效期内",
        "completeness": "完整率",
        "in_band": "在范围内",
        "stable_days": "稳定天数",
        "duty": "定时记录",
        "calibration": "校准",
        "overall": "结论",
        "pass": "合格",
        "fail": "不合格",
        "no_data": "无数据",
        "room": "库房",
        "quantity": "项目",
        "temperature": "温度",
        "humidity": "相对湿度",
        "figures": "主要指标",
        "band": "范围",
        "readings": "读数",
        "min": "最低",
        "mean": "平均",
        "max": "最高",
        "days": "天数（期间/有数据/充足/稳定）",
        "excursions": "超限",
        "excursions_n": "{n} 次，共 {duration}",
        "chart_values": "{q}变化曲线（小时平均值；浅色带为标准范围）",
        "chart_daily_values": "{q}变化曲线（每日最低—最高，线为平均值；浅色带为标准范围）",
        "chart_range": "{q}日较差（柱）与 24 小时稳定性限值（虚线 {limit}）",
        "chart_range_nolimit": "{q}日较差（本标准不设限值）",
        "daily": "逐日记录",
        "date": "日期",
        "range": "日较差",
        "stable": "稳定",
        "sufficient": "数据充足",
        "excursion_table": "超限记录",
        "sensor": "传感器",
        "side": "方向",
        "high": "偏高",
        "low": "偏低",
        "start": "开始",
        "end": "结束",
        "duration": "持续",
        "extreme": "极值",
        "none": "无",
        "alerts": "告警与处置",
        "alert": "告警",
        "severity": "级别",
        "active_at": "触发",
        "acked": "确认",
        "time_to_ack": "确认用时",
        "cleared": "恢复",
        "comments": "处置措施与备注",
        "access": "库门与出入登记",
        "door_openings": "开门次数",
        "after_hours": "其中非工作时间",
        "unregistered": "未登记进入",
        "sessions": "出入登记",
        "people": "人员",
        "purpose": "事由",
        "approval": "批准",
        "opened": "进入",
        "closed": "离开",
        "calibration_table": "仪器校准",
        "instrument": "仪器",
        "last_calibrated": "上次校准",
        "certificate": "证书编号",
        "due": "有效期至",
        "overdue": "已过期",
        "valid": "有效",
        "no_record": "无校准记录",
        "duty_table": "定时记录（1987 年《档案库房技术管理暂行规定》：每天至少记录两次）",
        "duty_summary": "应记录 {expected} 次，已有读数 {present} 次，缺 {missing} 次。",
        "duty_missing": "缺少读数的时刻",
        "preservation": "保存状况指标",
        "twpi": "时间加权保存指数 TWPI",
        "pi_range": "保存指数 PI 范围",
        "years": "年",
        "mould": "最长连续霉变风险时间",
        "hours": "小时",
        "emc": "平衡含水率 EMC 范围",
        "emc_mechanical": "机械损伤风险",
        "emc_corrosion": "金属腐蚀风险",
        "verdict_good": "良好",
        "verdict_ok": "可接受",
        "verdict_risk": "有风险",
        "explain_pi": "保存指数 PI 估算纸张等有机材料在该温湿度下自然老化到明显劣化所需的年数："
                      "低于 45 年有风险，45—75 年可接受，75 年及以上良好。",
        "explain_twpi": "TWPI 是按时间加权的 PI 调和平均值，代表整个期间对藏品寿命的总体影响。",
        "explain_mould": "相对湿度持续在 {rh} 以上（2—45 ℃）时霉菌可能生长；此处为期间内连续处于该区域的最长时间。",
        "explain_emc": "平衡含水率 EMC 是纸张、木材在该温湿度下趋于的含水率："
                       "低于 5 % 或高于 12.5 % 会因脆化或膨胀造成机械损伤。",
        "explain_corrosion": "按最高 EMC 判断金属腐蚀风险：低于 7 % 良好，7—10.5 % 可接受，10.5 % 及以上有风险。",
        "signatures": "签字",
        "prepared_by": "编制人",
        "reviewed_by": "审核人",
        "sign_date": "日期",
        "seal": "单位（盖章）",
        "month": "月份",
        "morning": "上午",
        "afternoon": "下午",
        "time": "时间",
        "indoor": "室内",
        "outdoor": "室外",
        "within_limits": "是否符合",
        "measures": "采取措施",
        "recorder": "记录人",
        "yes": "是",
        "no": "否",
        "auto": "自动",
        "limits": "标准范围",
        "register_notes": "说明：记录人 archmon 表示读数由 archmon 自动采集，"
                          "为定时时刻 ±{tol} 分钟内离该时刻最近的一次实测读数；"
                          "空格表示该时刻没有读数（不补记）。"
                          "“是否符合”按当日定时读数与标准范围比较，缺少定时读数的日期不判为符合，注明所缺时刻。"
                          "采取措施摘自告警的确认与处置记录。",
        "register_missing": "缺 {times}",
        "register_sensors": "传感器：{sensors}",
        "register_outdoor": "室外传感器：{sensors}",
        "no_outdoor": "未配置室外传感器",
        "alert_ref": "告警 #{id}",
        "more": "等 {n} 条，详见合规报告",
        "unit_t": "℃",
        "unit_rh": "%",
        "min_short": "分",
        "h_short": "小时",
        "d_short": "天",
        "colon": "：",
        "sev_critical": "紧急",
        "sev_major": "重要",
        "sev_minor": "次要",
        "sev_warning": "提示",
        "metric": "指标",
        "value": "数值",
        "verdict": "判定",
        "explanation": "说明",
        "list_sep": "、",
    },
    "en": {
        "report_title": "Archive storage environment compliance report",
        "register_title": "Temperature and humidity register",
        "site": "Site",
        "period": "Period",
        "period_days": "{days} days",
        "timezone": "Time zone",
        "rooms": "Rooms",
        "generated_at": "Generated at",
        "generated_by": "Generated by",
        "pages": "Pages",
        "pages_n": "{n} pages",
        "page_of": "Page {page} of {pages}",
        "standards": "Standards and how they were applied",
        "profile": "Standard",
        "source": "Source",
        "band_t": "Temperature band",
        "band_rh": "Relative humidity band",
        "stability": "24-hour stability (daily fluctuation)",
        "interp_A": "Interpretation A: the day's highest minus lowest value stays within the limit "
                    "(temperature {t}, relative humidity {rh}).",
        "interp_B": "Interpretation B: every value of the day stays within ± the limit of the set-point (the day's "
                    "mean without one) (temperature {t}, relative humidity {rh}).",
        "interp_none": "This standard sets no 24-hour stability limit.",
        "integrity": "Integrity",
        "data_digest": "SHA-256 of the report data",
        "audit_head": "Audit log head at generation",
        "verify_hint": "The SHA-256 of this file is recorded in archmon's audit log; archmon report verify FILE "
                       "tells whether the file is unchanged.",
        "summary": "Summary: pass or fail",
        "criteria": "Criteria",
        "crit_completeness": "records complete for ≥ {pct} % of the time",
        "crit_in_band": "temperature and humidity in band ≥ {pct} % of the time",
        "crit_stable": "every day with enough data meets the 24-hour stability rule",
        "crit_duty": "readings present at {times} every day",
        "crit_calibration": "no instrument past its calibration due date",
        "completeness": "Complete",
        "in_band": "In band",
        "stable_days": "Stable days",
        "duty": "Duty readings",
        "calibration": "Calibration",
        "overall": "Result",
        "pass": "pass",
        "fail": "fail",
        "no_data": "no data",
        "room": "Room",
        "quantity": "Quantity",
        "temperature": "Temperature",
        "humidity": "Relative humidity",
        "figures": "Key figures",
        "band": "Band",
        "readings": "Readings",
        "min": "Min",
        "mean": "Mean",
        "max": "Max",
        "days": "Days (period / data / enough / stable)",
        "excursions": "Excursions",
        "excursions_n": "{n}, {duration} in all",
        "chart_values": "{q} (hourly means; the shaded strip is the standard's band)",
        "chart_daily_values": "{q} (daily lowest to highest, line: mean; shaded: the standard's band)",
        "chart_range": "{q}: daily range (bars) against the 24-hour stability limit (dashed, {limit})",
        "chart_range_nolimit": "{q}: daily range (no limit in this standard)",
        "daily": "Day by day",
        "date": "Date",
        "range": "Range",
        "stable": "Stable",
        "sufficient": "Enough data",
        "excursion_table": "Excursions",
        "sensor": "Sensor",
        "side": "Side",
        "high": "high",
        "low": "low",
        "start": "Start",
        "end": "End",
        "duration": "Duration",
        "extreme": "Extreme",
        "none": "none",
        "alerts": "Alerts and what was done",
        "alert": "Alert",
        "severity": "Severity",
        "active_at": "Active",
        "acked": "Acknowledged",
        "time_to_ack": "To ack",
        "cleared": "Cleared",
        "comments": "Measures and comments",
        "access": "Doors and access register",
        "door_openings": "Door openings",
        "after_hours": "of them after hours",
        "unregistered": "Unregistered entries",
        "sessions": "Access sessions",
        "people": "People",
        "purpose": "Purpose",
        "approval": "Approval",
        "opened": "In",
        "closed": "Out",
        "calibration_table": "Instrument calibration",
        "instrument": "Instrument",
        "last_calibrated": "Last calibrated",
        "certificate": "Certificate",
        "due": "Due",
        "overdue": "overdue",
        "valid": "valid",
        "no_record": "no record",
        "duty_table": "Duty readings (1987 rules: readings at least twice a day)",
        "duty_summary": "{expected} expected, {present} with a reading, {missing} missing.",
        "duty_missing": "Duty times without a reading",
        "preservation": "Preservation metrics",
        "twpi": "Time-weighted preservation index (TWPI)",
        "pi_range": "Preservation index (PI) range",
        "years": "years",
        "mould": "Longest run in the mould-risk zone",
        "hours": "h",
        "emc": "Equilibrium moisture content (EMC) range",
        "emc_mechanical": "Mechanical damage risk",
        "emc_corrosion": "Metal corrosion risk",
        "verdict_good": "good",
        "verdict_ok": "OK",
        "verdict_risk": "at risk",
        "explain_pi": "The preservation index estimates the years until paper and other organic material decays "
                      "noticeably at a condition: under 45 years is a risk, 45 to 75 is OK, 75 or more is good.",
        "explain_twpi": "TWPI is the time-weighted harmonic mean of PI: the period's overall effect on the "
                        "collection's life.",
        "explain_mould": "Mould can grow when relative humidity stays at {rh} or above (2 to 45 °C); shown is the "
                         "longest unbroken time in that zone.",
        "explain_emc": "EMC is the moisture content paper and wood settle to at a condition: below 5 % or above "
                       "12.5 % they embrittle or swell, a mechanical risk.",
        "explain_corrosion": "Metal corrosion risk by the highest EMC: under 7 % good, 7 to 10.5 % OK, 10.5 % or more "
                             "at risk.",
        "signatures": "Signatures",
        "prepared_by": "Prepared by",
        "reviewed_by": "Reviewed by",
        "sign_date": "Date",
        "seal": "Organisation (seal)",
        "month": "Month",
        "morning": "Morning",
        "afternoon": "Afternoon",
        "time": "Time",
        "indoor": "Indoor",
        "outdoor": "Outdoor",
        "within_limits": "Within limits",
        "measures": "Measures taken",
        "recorder": "Recorder",
        "yes": "yes",
        "no": "no",
        "auto": "auto",
        "limits": "Limits",
        "register_notes": "Recorder archmon: the readings are taken automatically by archmon, the reading "
                          "nearest the duty time within ±{tol} min, as measured. An empty cell means no reading "
                          "at that time (nothing is filled in). \"Within limits\" compares the day's duty "
                          "readings with the band; a day missing a duty reading is not within limits, the missing "
                          "times are named. Measures are quoted from the alerts' acknowledgements and comments.",
        "register_missing": "missing {times}",
        "register_sensors": "Sensors: {sensors}",
        "register_outdoor": "Outdoor sensors: {sensors}",
        "no_outdoor": "no outdoor sensor configured",
        "alert_ref": "alert #{id}",
        "more": "and {n} more, see the compliance report",
        "unit_t": "°C",
        "unit_rh": "%",
        "min_short": "min",
        "h_short": "h",
        "d_short": "d",
        "colon": ": ",
        "sev_critical": "critical",
        "sev_major": "major",
        "sev_minor": "minor",
        "sev_warning": "warning",
        "metric": "Metric",
        "value": "Value",
        "verdict": "Verdict",
        "explanation": "What the bands mean",
        "list_sep": ", ",
    },
}
for _lang, _words in CONTROL_LABELS.items():
    LABELS[_lang].update(_words)


class PrintText:
    """Words and formats of one language for a printed document.

    Args:
        lang: ``zh`` or ``en`` (anything else: ``zh``).
        tz: the site's zone (times are shown in it, with their offset).
    """

    def __init__(self, lang: str, tz: ZoneInfo) -> None:
        self.lang = lang if lang in LABELS else "zh"
        self.tz = tz
        self._words = LABELS[self.lang]

    def __call__(self, key: str, **values: object) -> str:
        """The text of ``key``, formatted with ``values``."""
        text = self._words[key]
        return text.format(**values) if values else text

    def unit(self, quantity: str) -> str:
        """``℃``/``°C`` or ``%``."""
        return self._words["unit_t"] if quantity == "temperature" else self._words["unit_rh"]

    def value(self, value: float | None, quantity: str, *, unit: bool = True, digits: int = 1) -> str:
        """``22.4 ℃`` (``—`` for None)."""
        if value is None:
            return "—"
        text = f"{value:.{digits}f}"
        return f"{text} {self.unit(quantity)}" if unit else text

    def pct(self, value: float | None, digits: int = 1) -> str:
        """``99.5 %`` (``—`` for None)."""
        return "—" if value is None else f"{value:.{digits}f} %"

    def band(self, low: float | None, high: float | None, quantity: str) -> str:
        """``14–24 ℃``, ``≥ 14 ℃``, ``≤ 60 %`` or ``—``."""
        unit = self.unit(quantity)
        if low is not None and high is not None:
            return f"{low:g}–{high:g} {unit}"
        if low is not None:
            return f"≥ {low:g} {unit}"
        if high is not None:
            return f"≤ {high:g} {unit}"
        return "—"

    def when(self, ts_ms: int | None, *, date: bool = True, offset: bool = True) -> str:
        """``2025-03-04 12:00 +08:00`` in the site's zone (``—`` for None)."""
        if ts_ms is None:
            return "—"
        moment = dt.datetime.fromtimestamp(ts_ms / 1000, self.tz)
        text = moment.strftime("%Y-%m-%d %H:%M" if date else "%H:%M")
        if offset:
            raw = moment.strftime("%z")
            text += f" {raw[:3]}:{raw[3:]}"
        return text

    def duration(self, seconds: float | None) -> str:
        """``45 分``, ``3.5 小时``, ``2.0 天`` / ``45 min``, ``3.5 h``, ``2.0 d``."""
        if seconds is None:
            return "—"
        if seconds < 3600:
            return f"{seconds / 60:.0f} {self('min_short')}"
        if seconds < 172_800:
            return f"{seconds / 3600:.1f} {self('h_short')}"
        return f"{seconds / 86400:.1f} {self('d_short')}"

    def verdict(self, verdict: str | None) -> str:
        """``good``/``ok``/``risk`` in words (``—`` for None)."""
        return "—" if verdict is None else self(f"verdict_{verdict}")

    def severity(self, severity: str) -> str:
        """A severity in words (unknown ones as they are)."""
        return self._words.get(f"sev_{severity}", severity)

    def yes_no(self, value: bool | None) -> str:
        """是/否, yes/no, or empty for None."""
        return "" if value is None else self("yes" if value else "no")

    def name(self, zh: str, en: str, fallback: str = "") -> str:
        """The name in this language, else the other, else ``fallback``."""
        first, second = (zh, en) if self.lang == "zh" else (en, zh)
        return first or second or fallback
