"""What ``archmon status`` shows: a running site's state, read from the database (``archmon quarantine``:
``dashboards/quarantine.py``).

Reads without writing, so it is safe while ``archmon run`` is running.
"""

from __future__ import annotations

from typing import Any

from alerts.settings import stale_after_ms, stale_settings
from archmon.config import Config
from archmon.timeutil import now_ms, to_iso

__all__ = ["format_status", "status_report"]

STATS_STALE_MS = 60_000
"""A running service reports its sources' states every 10 s; older reports mean it is not running."""

COUNTERS = ("received", "readings", "stored", "duplicates", "rejected", "quarantined", "unassigned",
            "retained_skipped", "empty", "availability")


def status_report(config: Config, *, now: int | None = None) -> dict[str, Any]:
    """Per sensor: last values, last seen, state (ok/stale/never/offline); plus counters.

    Reads the database without writing, so it is safe while ``archmon run`` is running.
    """
    from collector.store import SqliteStore

    now = now_ms() if now is None else now
    path = config.resolve(config.storage.sqlite_path)
    if not path.exists():
        return {"database": str(path), "sensors": [], "counters": {}, "error": "no database yet"}
    store = SqliteStore(path, tz=config.site.tz, readonly=True)
    try:
        latest = store.latest()
        last_seen = store.last_seen()
        availability = store.availability()
        counters = store.counters()
        gauges = store.gauges()
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
        elif now - seen > stale_after_ms(sensor.expected_interval_s, stale):
            state = "stale"
        else:
            state = "ok"
        if avail is not None and avail[0] == "offline" and (seen is None or avail[1] >= seen):
            state = "offline" if state == "ok" else state
        sensors.append({
            "sensor": sensor.id, "room": sensor.room, "kind": sensor.kind, "source": sensor.source,
            "values": values.get(sensor.id, {}), "last_seen": to_iso(seen) if seen else None,
            "last_seen_local": to_iso(seen, config.site.tz)[:23] if seen else None,
            "age_s": round((now - seen) / 1000, 1) if seen else None, "state": state,
        })
    running = gauges.get("service.running")
    service_up = running is not None and running[0] == 1 and now - running[1] <= STATS_STALE_MS
    sources = []
    for source_id in [table.id for table in config.sources]:
        connected = gauges.get(f"source.{source_id}.connected")
        if not service_up:
            state = "archmon not running"
        elif connected is None:
            state = "unknown"
        else:
            state = "connected" if connected[0] else "DISCONNECTED"
        sources.append({"source": source_id, "state": state,
                        "reported": to_iso(connected[1], config.site.tz)[:19] if connected else None})
    return {
        "database": str(path),
        "site": config.site.name,
        "service_running": service_up,
        "sources": sources,
        "timezone": config.site.timezone,
        "sensors": sensors,
        "counters": counters,
        "quarantine_entries": quarantined,
        "unassigned_devices": len(unassigned),
        "channels": _notification_channels(config),
    }


def _notification_channels(config: Config) -> list[dict[str, Any]]:
    """Each notification channel's state (modem registration and signal, last success and failure)."""
    from alerts.notify.cli import channel_report

    return channel_report(config)


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


def format_status(report: dict[str, Any]) -> str:
    """The status report as a table for a terminal."""
    if report.get("error"):
        return f"{report['database']}: {report['error']}"
    lines = [f"site {report['site']} — {report['database']} (times in {report['timezone']})", ""]
    width = max([len(s["sensor"]) for s in report["sensors"]] + [6])
    lines.append(f"{'sensor':<{width}}  {'room':<12} {'state':<7} {'last seen':<23} values")
    for s in report["sensors"]:
        lines.append(f"{s['sensor']:<{width}}  {s['room']:<12} {s['state']:<7} {s['last_seen_local'] or '-':<23} "
                     f"{_fmt_values(s['values'])}")
    counters = report["counters"]
    lines.append("")
    lines.append("counters: " + ", ".join(f"{name} {counters.get(name, 0)}" for name in COUNTERS))
    if report.get("sources"):
        lines.append("sources:  " + ", ".join(f"{s['source']} {s['state']}" for s in report["sources"]))
    source_counters = sorted((k, v) for k, v in counters.items() if k.startswith("source."))
    if source_counters:
        lines.append("source counters: " + ", ".join(f"{k.removeprefix('source.')} {v}" for k, v in source_counters))
    lines.append(f"quarantine entries: {report['quarantine_entries']}; unassigned devices: "
                 f"{report['unassigned_devices']}")
    if report.get("channels"):
        from alerts.notify.cli import format_channel

        lines.append("notification channels:")
        lines += [f"  {format_channel(item)}" for item in report["channels"]]
    return "\n".join(lines)
