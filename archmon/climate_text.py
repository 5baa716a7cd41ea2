"""``archmon climate`` as text a person reads, in Chinese or English (Chinese by default for a Chinese site)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["LABELS", "condition_text"]

LABELS: dict[str, dict[str, str]] = {
    "zh": {"dew_point_c": "露点（℃）", "abs_humidity_g_m3": "绝对湿度（g/m³）", "pi_years": "保存指数 PI（年）",
           "emc_pct": "平衡含水率 EMC（%）", "mould_risk": "霉变风险", "unavailable": "无法计算", "yes": "有",
           "no": "无", "colon": "："},
    "en": {"dew_point_c": "dew point (℃)", "abs_humidity_g_m3": "absolute humidity (g/m³)",
           "pi_years": "preservation index (years)", "emc_pct": "equilibrium moisture content (%)",
           "mould_risk": "mould risk", "unavailable": "unavailable", "yes": "yes", "no": "no", "colon": ": "},
}


def condition_text(metrics: Mapping[str, float | bool | None], lang: str) -> str:
    """One line per figure of ``archmon.climate.condition_metrics(...).to_dict()`` in ``lang`` (``zh``/``en``);
    a figure that cannot be computed reads 无法计算 / unavailable."""
    words = LABELS["en" if lang == "en" else "zh"]
    lines = []
    for key, value in metrics.items():
        if value is None:
            shown = words["unavailable"]
        elif isinstance(value, bool):
            shown = words["yes" if value else "no"]
        else:
            shown = f"{value:g}"
        lines.append(f"{words[key]}{words['colon']}{shown}")
    return "\n".join(lines)
