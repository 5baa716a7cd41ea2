"""Words and number formats of one language for a printed document (the report, the register), looked up in
:data:`dashboards.reports.labels.LABELS`: values with their units, bands, times in the site's zone with their
offset, durations, verdicts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dashboards.reports.labels import LABELS

__all__ = ["PrintText"]


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
