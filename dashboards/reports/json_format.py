"""The report as JSON (keys documented in ``docs/reports.md``).

Every field of the report's types (:mod:`dashboards.reports.model`) appears under its own name; dates are
ISO dates; beside every ``*_ms`` time the same instant is given as ISO 8601 in the site's zone with its
offset, as ``*_at`` (``start_ms`` → ``start_at``, as the other commands' JSON). ``period`` carries
``from``, ``to``, ``tz`` and ``seconds`` as the issue names them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from dashboards.reports.model import ComplianceReport

__all__ = ["FORMAT_VERSION", "report_to_json", "write_json"]

FORMAT_VERSION = 1


def _iso(ts_ms: int, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz).isoformat(timespec="seconds")


def _plain(value: Any, tz: ZoneInfo) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for item in dataclasses.fields(value):
            inner = getattr(value, item.name)
            out[item.name] = _plain(inner, tz)
            if item.name.endswith("_ms") and item.name != "generated_ms":
                out[item.name.removesuffix("_ms") + "_at"] = None if inner is None else _iso(int(inner), tz)
        for name in ("missing",):  # derived properties printed with the fields
            if hasattr(type(value), name) and isinstance(getattr(type(value), name), property):
                out[name] = getattr(value, name)
        return out
    if isinstance(value, dict):
        return {str(k): _plain(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, tz) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def report_to_json(report: ComplianceReport) -> dict[str, Any]:
    """The report as JSON-able data."""
    tz = ZoneInfo(report.period.tz)
    period = report.period
    return {
        "format": "archmon-compliance-report",
        "format_version": FORMAT_VERSION,
        "site": report.site,
        "lang": report.lang,
        "generated_ms": report.generated_ms,
        "generated_at": _iso(report.generated_ms, tz),
        "generated_by": report.generated_by,
        "sufficient_pct": report.sufficient_pct,
        "period": {"from": period.from_date.isoformat(), "to": period.to_date.isoformat(), "tz": period.tz,
                   "seconds": period.seconds, "days": period.days, "start_ms": period.start_ms,
                   "start_at": _iso(period.start_ms, tz), "end_ms": period.end_ms, "end_at": _iso(period.end_ms, tz)},
        "rooms": [_plain(room, tz) for room in report.rooms],
    }


def write_json(report: ComplianceReport, out: TextIO) -> None:
    """Write the report as indented UTF-8 JSON (Chinese kept as it is); NaN never appears (None instead)."""
    json.dump(report_to_json(report), out, ensure_ascii=False, indent=2, allow_nan=False)
    out.write("\n")
