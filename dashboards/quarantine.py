"""What ``archmon quarantine`` shows: rejected messages and unassigned devices, safe to print.

Everything here came from devices or the network, so every control character (C0, DEL, C1, and the
Unicode format characters that reorder text, such as U+202E) of payloads, topics and reasons is escaped
before it reaches a terminal: a payload cannot move the cursor, clear the screen or fake a line. Times are
shown in the site's zone with their offset. Reads the database without writing (safe while ``archmon
run`` runs).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from archmon.config import Config
from archmon.logsetup import printable
from archmon.timeutil import to_iso

__all__ = ["printable", "quarantine_data", "quarantine_report"]

PAYLOAD_SHOWN = 200
"""Bytes of a payload shown in the text listing (``--format json`` gives all that is kept)."""


def _payload_text(payload: bytes) -> str:
    """A payload as text: UTF-8 where it is, each other byte as ``\\xNN``, control characters escaped."""
    out = []
    for char in payload.decode("utf-8", "surrogateescape"):
        code = ord(char)
        out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else printable(char))
    return "".join(out)


def _finite_or_text(value: Any) -> Any:
    """A number as JSON can hold it: ``NaN`` and infinities (written by earlier versions) as their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite_or_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_text(v) for v in value]
    return value


def _would_give(readings_json: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(readings, rejected)`` of an unassigned device's last message (older files stored a plain list, and
    could hold ``NaN``/``Infinity`` tokens: they are given as text)."""
    try:
        data = _finite_or_text(json.loads(readings_json))
    except ValueError:
        return [], [{"reason": "unreadable", "value": readings_json[:80]}]
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict) and "quantity" in r], []
    if isinstance(data, dict):
        readings, rejected = data.get("readings"), data.get("rejected")
        return ([r for r in readings if isinstance(r, dict)] if isinstance(readings, list) else [],
                [r for r in rejected if isinstance(r, dict)] if isinstance(rejected, list) else [])
    return [], []


def quarantine_data(config: Config, *, limit: int = 20) -> dict[str, Any]:
    """The newest ``limit`` quarantined messages and every unassigned device, as plain data (``--format json``).

    Text fields are escaped with :func:`printable`; payloads are given as escaped text and as base64.
    """
    from collector.store import SqliteStore

    path = config.resolve(config.storage.sqlite_path)
    tz = config.site.tz
    if not path.exists():
        return {"database": str(path), "error": "no database yet", "quarantine": [], "unassigned": []}
    store = SqliteStore(path, tz=tz, readonly=True)
    try:
        records = store.quarantine(limit=limit)
        total = store.quarantine_count()
        devices = store.unassigned()
    finally:
        store.close()
    quarantine = [
        {
            "id": rec.id,
            "received": to_iso(rec.received_ms, tz),
            "source": printable(rec.source),
            "topic": printable(rec.topic),
            "sensor": printable(rec.sensor) if rec.sensor else None,
            "stage": rec.stage,
            "reason": printable(rec.reason),
            "payload_text": _payload_text(rec.payload),
            "payload_base64": base64.b64encode(rec.payload).decode("ascii"),
            "payload_size": rec.payload_size,
            "payload_sha256": rec.payload_sha256.hex(),
            "payload_repeats": rec.payload_repeats,
            "truncated": rec.truncated,
        }
        for rec in records
    ]
    unassigned = []
    for dev in devices:
        readings, rejected = _would_give(dev.last_readings_json)
        unassigned.append({
            "source": printable(dev.source),
            "device_topic": printable(dev.device_topic),
            "format": dev.format,
            "first_seen": to_iso(dev.first_seen_ms, tz),
            "last_seen": to_iso(dev.last_seen_ms, tz),
            "messages": dev.count,
            "readings": [{k: printable(v) if isinstance(v, str) else v for k, v in r.items()} for r in readings],
            "rejected": [{k: printable(v) if isinstance(v, str) else v for k, v in r.items()} for r in rejected],
            "last_payload_text": _payload_text(dev.last_payload),
        })
    return {"database": str(path), "timezone": config.site.timezone, "quarantine_total": total,
            "quarantine": quarantine, "unassigned": unassigned}


def _fmt_reading(r: dict[str, Any]) -> str:
    unit = f" {r['unit']}" if r.get("unit") else ""
    return f"{r.get('quantity', '?')} {r.get('value')}{unit}"


def quarantine_report(config: Config, *, limit: int = 20, fmt: str = "text") -> str:
    """The newest quarantined messages and the unassigned devices, as text rows or JSON (``fmt="json"``)."""
    data = quarantine_data(config, limit=limit)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False)
    if data.get("error"):
        return f"{data['database']}: {data['error']}"
    lines = [f"{len(data['quarantine'])} newest of {data['quarantine_total']} quarantined message(s) "
             f"(times in {data['timezone']}):"]
    for rec in data["quarantine"]:
        shown = _payload_text(base64.b64decode(rec["payload_base64"])[:PAYLOAD_SHOWN])
        more = f" … ({rec['payload_size']} bytes, sha256 {rec['payload_sha256'][:16]}…)" \
            if rec["payload_size"] > PAYLOAD_SHOWN else ""
        sensor = f" sensor {rec['sensor']}" if rec["sensor"] else ""
        lines.append(f"- {rec['received']}  {rec['source']}  {rec['topic']}{sensor}  [{rec['stage']}] {rec['reason']}")
        lines.append(f"    payload: {shown}{more}")
    lines.append("")
    lines.append(f"{len(data['unassigned'])} unassigned device(s) (configure a sensor with this topic to adopt one):")
    if data["unassigned"]:
        lines.append(f"  {'source':<12} {'device topic':<32} {'format':<12} {'last seen':<29} {'msgs':>6}  would give")
    for dev in data["unassigned"]:
        gives = ", ".join(_fmt_reading(r) for r in dev["readings"]) or "-"
        if dev["rejected"]:
            gives += "; rejected: " + ", ".join(f"{r.get('quantity', '?')} {r.get('value')} ({r.get('reason', '')})"
                                               for r in dev["rejected"])
        lines.append(f"  {dev['source']:<12} {dev['device_topic']:<32} {dev['format']:<12} {dev['last_seen']:<29} "
                     f"{dev['messages']:>6}  {gives}")
    return "\n".join(lines)
