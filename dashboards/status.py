"""What ``archmon status`` shows: a running site's state, read from the database (``archmon quarantine``:
``dashboards/quarantine.py``).

Reads without writing, so it is safe while ``archmon run`` is running. Every time is shown in the site's
zone with its offset. A site with hundreds of sensors gets one line per room and the sensors that need
attention; ``--all`` (``full=True``) lists every sensor, ``--room`` one room's.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from alerts.settings import stale_after_ms, stale_settings
from archmon.config import Config
from archmon.logsetup import zone_label
from archmon.sqlite import connect
from archmon.timeutil import now_ms, to_iso
from collector.forward.status import format_forward, forward_report
from collector.spool import format_spool, spool_report

__all__ = ["ALERT_COUNTERS_SHOWN", "ATTENTION_PER_ROOM", "FULL_LIST_MAX", "Gauge", "format_status", "status_report"]

STATS_STALE_MS = 60_000
"""A running service reports its sources' states every 10 s; older reports mean it is not running."""

FULL_LIST_MAX = 40
"""Up to this many sensors, the text view lists every one; beyond, only those that need attention."""

COUNTERS = ("received", "readings", "stored", "duplicates", "rejected", "quarantined", "unassigned", "ignored",
            "clamped", "retained_skipped", "redelivered_restamped", "empty", "availability")
ATTENTION_PER_ROOM = 10
"""Beyond :data:`FULL_LIST_MAX`, at most this many sensors that need attention are listed per room (an outage
of a whole room would otherwise be a page per room); the rest of the room is one "and N more" line."""

ALERT_COUNTERS_SHOWN = ("readings_judged", "late_readings", "late_for_alerts", "late_alarms", "late_for_day")
"""The alert service's numbers people read in the text view, zeros included; the others (series, window
sizes, state write times...) are for monitoring: ``--format json``."""
STATES = ("ok", "stale", "never", "offline", "imported")
_DEVICE_PROBLEMS = ("timeouts", "crc_errors", "exception_responses", "errors")


class Gauge(NamedTuple):
    """A state the service reported (``service.running``, ``source.b.connected``...) and when."""

    value: int
    ts_ms: int


def _gauges(raw: dict[str, tuple[int, int]]) -> dict[str, Gauge]:
    return {name: Gauge(*state) for name, state in raw.items()}


def status_report(config: Config, *, now: int | None = None) -> dict[str, Any]:
    """Per sensor: last values, last seen, state (ok/stale/never/offline); per room a summary; sources,
    alerts, counters and the last reload.

    Reads the database without writing, so it is safe while ``archmon run`` is running.
    """
    from collector.store import SqliteStore

    now = now_ms() if now is None else now
    tz = config.site.tz
    path = config.resolve(config.storage.sqlite_path)
    if not path.exists():
        return {"database": str(path), "sensors": [], "counters": {}, "error": "no database yet"}
    store = SqliteStore(path, tz=tz, readonly=True)
    try:
        latest = store.latest()
        last_seen = store.last_seen()
        availability = store.availability()
        counters = store.counters()
        gauges = _gauges(store.gauges())
        quarantined = store.quarantine_count()
        unassigned = store.unassigned()
    finally:
        store.close()
    stale = stale_settings(config)
    values: dict[str, dict[str, Any]] = {}
    for item in latest:
        values.setdefault(item.sensor, {})[item.quantity] = item.value
    sensors = []
    for sensor in config.sensors:
        seen = last_seen.get(sensor.id)
        avail = availability.get(sensor.id)
        if seen is None:
            state = "never"
        elif not sensor.live:
            state = "imported"  # readings only from files: its age is not staleness
        elif now - seen > stale_after_ms(sensor.expected_interval_s, stale):
            state = "stale"
        else:
            state = "ok"
        if avail is not None and avail[0] == "offline" and (seen is None or avail[1] >= seen):  # (state, ts_ms)
            state = "offline" if state == "ok" else state
        sensors.append({
            "sensor": sensor.id, "room": sensor.room, "kind": sensor.kind, "source": sensor.source,
            "values": values.get(sensor.id, {}), "last_seen": to_iso(seen) if seen else None,
            "last_seen_local": to_iso(seen, tz) if seen else None,
            "age_s": round((now - seen) / 1000, 1) if seen else None, "state": state,
        })
    running = gauges.get("service.running")
    service_up = running is not None and running.value == 1 and now - running.ts_ms <= STATS_STALE_MS
    sources = []
    for source_id in [table.id for table in config.sources]:
        connected = gauges.get(f"source.{source_id}.connected")
        if not service_up:
            state = "archmon not running"
        elif connected is None:
            state = "unknown"
        else:
            state = "connected" if connected.value else "DISCONNECTED"
        buffered = gauges.get(f"source.{source_id}.buffered")  # serial: read, not stored yet
        sources.append({"source": source_id, "state": state,
                        "reported": to_iso(connected.ts_ms, tz) if connected else None,
                        "counters": _source_counters(counters, source_id),
                        "buffered": buffered.value if buffered else 0,
                        "spool": spool_report(path, source_id, _value(gauges, f"source.{source_id}.spool_max_bytes"),
                                              tz)})
    return {
        "database": str(path),
        "site": config.site.name,
        "timezone": config.site.timezone,
        "now_local": to_iso(now, tz),
        "service_running": service_up,
        "service_reported": to_iso(running.ts_ms, tz) if running else None,
        "dashboard": _dashboard(gauges) if service_up else None,
        "sources": sources,
        "rooms": _rooms(config, sensors),
        "sensors": sensors,
        "alerts": {"open": _open_alerts(path), **_alert_numbers(counters, gauges)},
        "writer": {"queued_records": _value(gauges, "writer.queued_records"),
                   "retrying": bool(_value(gauges, "writer.retrying")),
                   "failures": counters.get("writer.failures", 0)},
        "last_reload": _last_reload(path, gauges, tz),
        "forwarding": forward_report(config, path, now=now, counters=counters, service_up=service_up,
                                     gauges={name: (g.value, g.ts_ms) for name, g in gauges.items()}),
        "counters": counters,
        "quarantine_entries": quarantined,
        "unassigned_devices": len(unassigned),
        "channels": _notification_channels(config),
    }


def _value(gauges: dict[str, Gauge], name: str) -> int:
    gauge = gauges.get(name)
    return gauge.value if gauge else 0


def _alert_numbers(counters: dict[str, int], gauges: dict[str, Gauge]) -> dict[str, dict[str, int]]:
    """The alert service's counters and states. A name it reports as a state is not a counter, even where an
    older archmon added it up in the counters table."""
    states = {k.removeprefix("alerts."): g.value for k, g in gauges.items() if k.startswith("alerts.")}
    found = {k.removeprefix("alerts."): v for k, v in counters.items() if k.startswith("alerts.")}
    shown = dict.fromkeys(ALERT_COUNTERS_SHOWN, 0)
    return {"counters": {**shown, **{k: v for k, v in found.items() if k not in states}}, "gauges": states}


def _dashboard(gauges: dict[str, Gauge]) -> dict[str, Any] | None:
    """What the running service said about its web dashboard (None: an archmon that does not serve one)."""
    if "http.serving" not in gauges:
        return None
    return {"enabled": bool(_value(gauges, "http.enabled")), "serving": bool(_value(gauges, "http.serving")),
            "port": _value(gauges, "http.port")}


def _notification_channels(config: Config) -> list[dict[str, Any]]:
    """Each notification channel's state (modem registration and signal, last success and failure)."""
    from alerts.notify.cli import channel_report

    return channel_report(config)


def _source_counters(counters: dict[str, int], source_id: str) -> dict[str, Any]:
    """A source's totals, and (Modbus) the addresses of devices that had problems, instead of every
    per-device counter (a bus may have hundreds)."""
    prefix = f"source.{source_id}."
    totals: dict[str, Any] = {}
    problems: dict[str, dict[str, int]] = {}
    for name, value in counters.items():
        if not name.startswith(prefix):
            continue
        key = name.removeprefix(prefix)
        if key.startswith("device."):
            _, address, counter = key.split(".", 2)
            if counter in _DEVICE_PROBLEMS and value:
                problems.setdefault(address, {})[counter] = value
        else:
            totals[key] = value
    if problems:
        totals["device_problems"] = dict(sorted(problems.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0))
    return totals


def _rooms(config: Config, sensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for room in config.rooms:
        members = [s for s in sensors if s["room"] == room.id]
        states = Counter(s["state"] for s in members)
        summary: dict[str, Any] = {"room": room.id, "name_zh": room.name_zh, "name_en": room.name_en,
                                   "sensors": len(members), **{state: states.get(state, 0) for state in STATES}}
        for quantity in ("temperature", "humidity"):
            found = [s["values"][quantity] for s in members if quantity in s["values"] and s["state"] == "ok"]
            summary[quantity] = [min(found), max(found)] if found else None
        summary["doors_open"] = sum(1 for s in members if s["values"].get("door") == 1 and s["state"] == "ok")
        summary["alarms"] = sum(1 for s in members if s["state"] == "ok" and
                                (s["values"].get("smoke") == 1 or s["values"].get("leak") == 1))
        out.append(summary)
    return out


def _read_only(path: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query on the alert service's tables, or none when they are not there (alerts never ran)."""
    try:
        conn = connect(path, readonly=True)
    except sqlite3.Error:
        return []
    try:
        return conn.execute(query).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _open_alerts(path: Path) -> dict[str, int]:
    rows = _read_only(path, "SELECT severity, count(*) FROM alert_alerts "
                            "WHERE state IN ('pending', 'active', 'acknowledged') GROUP BY severity")
    return {str(severity): int(count) for severity, count in rows}


def _last_reload(path: Path, gauges: dict[str, Gauge], tz: Any) -> dict[str, Any] | None:
    """The newest reload (audited by the service), with what waits for a restart."""
    rows = _read_only(path, "SELECT ts_ms, payload FROM audit_log WHERE kind = 'config' AND subject = 'service' "
                            "ORDER BY seq DESC LIMIT 1")
    if not rows:
        return None
    ts_ms, payload = rows[0]
    try:
        details = json.loads(payload)
    except ValueError:
        details = {}
    return {"at": to_iso(int(ts_ms), tz), "at_ms": int(ts_ms), "applied": details.get("event") == "reload",
            "restart_needed": details.get("restart_needed", []), "problems": len(details.get("problems", []))}


# -- text ------------------------------------------------------------------------------------------

def _fmt_values(values: dict[str, float]) -> str:
    units = {"temperature": "°C", "humidity": "%RH", "battery": "%", "light": "lx"}
    parts = []
    for quantity, value in sorted(values.items()):
        if quantity == "door":
            parts.append("door " + ("OPEN" if value else "closed"))
        elif quantity in ("smoke", "leak"):
            parts.append(f"{quantity} " + ("ALARM" if value else "ok"))
        else:
            parts.append(f"{quantity} {value:g}{units.get(quantity, '')}")
    return ", ".join(parts) or "-"


def _local(iso: str | None, *, date: bool = True) -> str:
    """An ISO time of the report (already in the site's zone) as people read it."""
    if not iso:
        return "-"
    text = iso.replace("T", " ")
    return text[:19] + text[23:] if date else text[11:19] + text[23:]


def _range(values: list[float] | None, unit: str) -> str:
    if not values:
        return "-"
    low, high = values
    return f"{low:.1f}{unit}" if low == high else f"{low:.1f}–{high:.1f}{unit}"


def _counts(items: dict[str, int], names: tuple[str, ...] | None = None) -> str:
    """``name value, ...``: the ``names`` given, zeros included, or (without) every non-zero item."""
    keys = names if names is not None else tuple(items)
    return ", ".join(f"{name} {items.get(name, 0)}" for name in keys if names is not None or items.get(name))


def _capped_per_room(listed: list[dict[str, Any]]) -> list[dict[str, Any] | str]:
    """At most :data:`ATTENTION_PER_ROOM` sensors of each room, then one line for the rest of that room."""
    out: list[dict[str, Any] | str] = []
    by_room: dict[str, list[dict[str, Any]]] = {}
    for s in listed:
        by_room.setdefault(s["room"], []).append(s)
    for room_id, members in by_room.items():
        out += members[:ATTENTION_PER_ROOM]
        if len(members) > ATTENTION_PER_ROOM:
            rest = Counter(s["state"] for s in members[ATTENTION_PER_ROOM:])
            out.append(f"  … and {len(members) - ATTENTION_PER_ROOM} more in {room_id} ("
                       + ", ".join(f"{n} {state}" for state, n in rest.items()) + f"; --room {room_id} lists them)")
    return out


def format_status(report: dict[str, Any], *, full: bool | None = None, room: str | None = None) -> str:
    """The status report as text for a terminal.

    Args:
        report: from :func:`status_report`.
        full: list every sensor (None: for one room, or when there are at most :data:`FULL_LIST_MAX`).
        room: only this room's sensors.
    """
    if report.get("error"):
        return f"{report['database']}: {report['error']}"
    lines = [f"archmon status — site {report['site']}; times in {zone_label(ZoneInfo(report['timezone']))}; "
             f"now {_local(report['now_local'])}",
             f"database {report['database']}"]
    service = "running" if report["service_running"] else "NOT RUNNING"
    if report.get("service_reported"):
        service += f" (last report {_local(report['service_reported'])})"
    reload = report.get("last_reload")
    if reload:
        service += (f"; last reload {_local(reload['at'])} "
                    + ("applied" if reload["applied"] else f"REFUSED ({reload['problems']} problem(s), see the log)"))
        if reload["restart_needed"]:
            service += f"; waiting for a restart: {', '.join(reload['restart_needed'])}"
    dashboard = report.get("dashboard")
    if dashboard:
        service += ("; dashboard " + (f"on port {dashboard['port']}" if dashboard["serving"]
                                      else "NOT SERVED (its address could not be used, see the log)")
                    if dashboard["enabled"] else "; dashboard off")
    lines.append(f"service  {service}")
    writer = report.get("writer") or {}
    if writer.get("retrying") or writer.get("queued_records", 0) > 1000:
        lines.append(f"store    {'RETRYING writes, ' if writer.get('retrying') else ''}"
                     f"{writer.get('queued_records', 0)} record(s) queued")
    if report.get("sources"):
        lines.append("sources  " + "; ".join(f"{s['source']} {s['state']}" + (
            f" ({s['buffered']} buffered, not stored yet)" if s.get("buffered") else "") + format_spool(s.get("spool"))
            for s in report["sources"]))
    if report.get("forwarding"):
        lines += format_forward(report["forwarding"])
    alerts = report.get("alerts") or {}
    open_alerts = alerts.get("open") or {}
    alert_text = (f"{sum(open_alerts.values())} open" + (f" ({_counts(open_alerts)})" if open_alerts else ""))
    if alerts.get("counters"):
        alert_text += "; " + _counts(alerts["counters"], ALERT_COUNTERS_SHOWN)
    lines.append(f"alerts   {alert_text}")
    sensors = [s for s in report["sensors"] if room is None or s["room"] == room]
    states = Counter(s["state"] for s in sensors)
    lines.append(f"sensors  {len(sensors)}: " + ", ".join(f"{states.get(st, 0)} {st}" for st in STATES))

    rooms = [r for r in report.get("rooms", []) if room is None or r["room"] == room]
    if rooms:
        width = max([len(r["room"]) for r in rooms] + [4])
        lines += ["", f"{'room':<{width}}  sensors   ok stale never offline  {'temperature':<13} {'humidity':<13} "
                      "doors open, alarms"]
        for r in rooms:
            lines.append(f"{r['room']:<{width}}  {r['sensors']:>7} {r['ok']:>4} {r['stale']:>5} {r['never']:>5} "
                         f"{r['offline']:>7}  {_range(r['temperature'], '°C'):<13} {_range(r['humidity'], '%'):<13} "
                         f"{r['doors_open']}, {r['alarms']}")

    show_all = full if full is not None else room is not None or len(sensors) <= FULL_LIST_MAX
    listed = sensors if show_all else [s for s in sensors if s["state"] != "ok"]
    lines.append("")
    if listed:
        width = max([len(s["sensor"]) for s in listed] + [6])
        room_width = max([len(s["room"]) for s in listed] + [4])
        title = "" if show_all else f"sensors that need attention ({len(listed)} of {len(sensors)}):\n"
        lines.append(f"{title}{'sensor':<{width}}  {'room':<{room_width}}  {'state':<7} {'last seen':<25} values")
        for s in listed if show_all else _capped_per_room(listed):
            if isinstance(s, str):
                lines.append(s)
                continue
            lines.append(f"{s['sensor']:<{width}}  {s['room']:<{room_width}}  {s['state']:<7} "
                         f"{_local(s['last_seen_local']):<25} {_fmt_values(s['values'])}")
    else:
        lines.append(f"every one of the {len(sensors)} sensors is ok")
    if not show_all:
        lines.append("(--all lists every sensor, --room ID one room's)")

    counters = report["counters"]
    lines += ["", "counters " + _counts(counters, COUNTERS)]
    for source in report.get("sources", []):
        totals = dict(source.get("counters") or {})
        problems = totals.pop("device_problems", None)
        text = _counts({k: v for k, v in totals.items() if isinstance(v, int)})
        if problems:
            text += "; devices with errors: " + ", ".join(
                f"{address} ({_counts(kinds)})" for address, kinds in list(problems.items())[:20])
            if len(problems) > 20:
                text += f" and {len(problems) - 20} more"
        if text:
            lines.append(f"  {source['source']}: {text}")
    lines.append(f"quarantine entries {report['quarantine_entries']}; unassigned devices "
                 f"{report['unassigned_devices']} (archmon quarantine shows them)")
    if report.get("channels"):
        from alerts.notify.cli import format_channel

        lines.append("notification channels:")
        lines += [f"  {format_channel(item)}" for item in report["channels"]]
    return "\n".join(lines)
