"""What ``archmon status`` shows about forwarding: the outbox (rows, bytes, age of the oldest), what was
forwarded, refused and left at the bound, and the last success and failure. Read-only, safe while
``archmon run`` runs."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archmon.config import Config
from archmon.sqlite import connect
from archmon.timeutil import to_iso
from collector.forward.outbox import read_totals

__all__ = ["format_forward", "forward_report"]

STATS_PREFIX = "forward.influxdb."
"""Names of the running service's forwarding counters and states (``forward.influxdb.up``...)."""


def forward_report(config: Config, path: Path, *, now: int, counters: Mapping[str, int],
                   gauges: Mapping[str, tuple[int, int]], service_up: bool) -> dict[str, Any] | None:
    """The forwarding part of the status report (None: no ``[forward.influxdb]`` and no outbox in the file).

    Args:
        config: the configuration (the target's address and limits).
        path: the database file.
        now: UTC epoch ms.
        counters, gauges: the store's (``forward.influxdb.failures``, ``forward.influxdb.up``).
        service_up: whether ``archmon run`` reports itself running (otherwise ``up`` is unknown).
    """
    target = config.forward.influxdb
    tz = config.site.tz
    totals = None
    try:
        conn = connect(path, readonly=True)
    except (sqlite3.Error, FileNotFoundError):
        conn = None
    if conn is not None:
        try:
            totals = read_totals(conn)
        except sqlite3.Error:  # no outbox in this file (forwarding never ran)
            totals = None
        finally:
            conn.close()
    if target is None and totals is None:
        return None
    up = gauges.get(f"{STATS_PREFIX}up")
    report: dict[str, Any] = {
        "target": "influxdb",
        "url": target.url if target else None,
        "api": target.api if target else None,
        "enabled": bool(target and target.enabled),
        "up": bool(up[0]) if (up is not None and service_up) else None,
        "failures": int(counters.get(f"{STATS_PREFIX}failures", 0)),
        "requests": int(counters.get(f"{STATS_PREFIX}requests", 0)),
    }
    if target is not None:
        report.update(max_rows=target.outbox_max_rows, max_bytes=target.outbox_max_bytes,
                      warn_rows=target.warn_rows_at, warn_bytes=target.warn_bytes_at)
    if totals is None:
        return report
    age = None if totals.oldest_queued_ms is None else max(0, now - totals.oldest_queued_ms) // 1000
    report.update(
        outbox_rows=totals.rows, outbox_bytes=totals.bytes, oldest_age_s=age,
        oldest_queued=to_iso(totals.oldest_queued_ms, tz) if totals.oldest_queued_ms is not None else None,
        forwarded=totals.forwarded, quarantined=totals.quarantined, overflowed=totals.overflowed,
        refilled=totals.refilled, overflow_pending=totals.overflow_pending,
        overflow_since=to_iso(totals.overflow_since_ms, tz) if totals.overflow_since_ms is not None else None,
        last_ok=to_iso(totals.last_ok_ms, tz) if totals.last_ok_ms is not None else None,
        last_error=totals.last_error or None,
        last_error_at=to_iso(totals.last_error_ms, tz) if totals.last_error_ms is not None else None,
    )
    if target is not None:
        report["backlog"] = bool(totals.overflow_pending or totals.rows >= target.warn_rows_at
                                 or totals.bytes >= target.warn_bytes_at
                                 or (age is not None and age >= target.warn_age_s))
    return report


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _local(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] + iso[23:] if iso else "-"


def format_forward(report: Mapping[str, Any]) -> list[str]:
    """The forwarding lines of ``archmon status`` (text; times already in the site's zone)."""
    state = {True: "up", False: "DOWN", None: "state unknown (archmon not running)"}[report.get("up")]
    if not report.get("enabled"):
        state = "disabled"
    head = f"forward  influxdb {report.get('url') or '(not configured any more)'}: {state}"
    if "outbox_rows" not in report:
        return [head + "; no outbox yet"]
    rows = report["outbox_rows"]
    head += f"; outbox {rows} row(s) ({_size(report['outbox_bytes'])})"
    if rows:
        head += f", oldest {report['oldest_age_s']} s"
    if report.get("backlog"):
        head += " — BACKLOG"
    lines = [head, f"         forwarded {report['forwarded']}, failed requests {report['failures']}, refused points "
                   f"{report['quarantined']}, at the bound {report['overflowed']} (queued again {report['refilled']})"]
    if report.get("overflow_pending"):
        lines.append(f"         OUTBOX FULL since {_local(report.get('overflow_since'))}: "
                     f"{report['overflow_pending']} reading(s) kept locally, queued again once it drains")
    if report.get("last_error") and report.get("up") is not True:
        lines.append(f"         last error {_local(report.get('last_error_at'))}: {report['last_error']}")
    elif report.get("last_ok"):
        lines.append(f"         last accepted {_local(report['last_ok'])}")
    return lines
