"""What happened in a room besides its climate: the alert log with how each alert was handled, and the door /
access summary (openings from the summaries' door bitmaps, after-hours openings, unregistered entries,
access sessions from the register)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alerts.access import read_sessions
from alerts.settings import WorkingHours
from alerts.store import AlertReader
from collector.store import SLOT_MS, SummaryHour
from dashboards.reports.model import AccessSessionEntry, AccessSummary, AlertComment, AlertEntry

__all__ = ["access_summary", "alert_log", "door_openings"]

_NONZERO = re.compile(rb"[^\x00]")


def _acknowledged(reader: AlertReader, alert: dict[str, Any]) -> tuple[int | None, str | None]:
    """When and by whom an alert was acknowledged: the acknowledged transition, or for an alert acknowledged
    after it cleared, the closing by a person."""
    if alert.get("acked_ms") is not None:
        return int(alert["acked_ms"]), alert.get("acked_by")
    for step in reader.transitions(int(alert["id"])):
        if step["to_state"] == "acknowledged" or (step["to_state"] == "closed" and step["from_state"] == "cleared"
                                                  and step.get("by")):
            return int(step["ts_ms"]), step.get("by")
    return None, None


def alert_log(reader: AlertReader | None, room: str, start_ms: int, end_ms: int) -> tuple[AlertEntry, ...]:
    """The room's alerts open at some time in the period, oldest first, with acknowledgement and comments."""
    if reader is None:
        return ()
    out = []
    for alert in reader.alerts_between(start_ms, end_ms, rooms=[room]):
        acked_ms, acked_by = _acknowledged(reader, alert)
        active = alert.get("active_ms")
        comments = tuple(AlertComment(int(c["ts_ms"]), str(c["by"]), str(c["comment"]))
                         for c in reader.comments(int(alert["id"])))
        out.append(AlertEntry(
            id=int(alert["id"]), rule=str(alert["rule"]), severity=str(alert["severity"]), state=str(alert["state"]),
            sensor=alert.get("sensor"), quantity=alert.get("quantity"), title_zh=str(alert.get("title_zh") or ""),
            title_en=str(alert.get("title_en") or ""), value=alert.get("value"), limit=alert.get("limit_value"),
            opened_ms=int(alert["opened_ms"]), active_ms=None if active is None else int(active), acked_ms=acked_ms,
            acked_by=acked_by, cleared_ms=alert.get("cleared_ms"), closed_ms=alert.get("closed_ms"),
            time_to_ack_s=None if acked_ms is None or active is None else max(0.0, (acked_ms - int(active)) / 1000),
            comments=comments))
    return tuple(out)


def door_openings(rows: Sequence[SummaryHour], start_ms: int, end_ms: int) -> list[int]:
    """Times (UTC ms, to the 10-second slot) at which a door opened: a slot holding an "open" reading whose
    previous slot with a reading held only "closed" ones. A door already open when the period starts is not
    counted; a slot with both an open and a closed reading counts as open.

    The previous reading is found with integer arithmetic on the period's whole bitmap: a closed slot's carry
    runs through the empty slots after it and stops at the next slot with a reading.
    """
    slots = (end_ms - start_ms) // SLOT_MS
    size = slots // 8 + 48
    present, high = bytearray(size), bytearray(size)
    late_present, late_high = 0, 0  # hours not starting on a byte boundary (half-hour DST days)
    for row in rows:
        if not start_ms <= row.start_ms < end_ms:
            continue
        offset = (row.start_ms - start_ms) // SLOT_MS
        if offset % 8 == 0:
            at = offset // 8
            present[at:at + 48] = row.present.to_bytes(48, "little")
            high[at:at + 48] = row.high.to_bytes(48, "little")
        else:
            late_present |= row.present << offset
            late_high |= row.high << offset
    mask = (1 << slots) - 1
    p = (int.from_bytes(present, "little") | late_present) & mask
    o = (int.from_bytes(high, "little") | late_high) & p
    closed = p & ~o
    reached = ((closed << 1) + (~p & mask)) & p  # slots whose previous reading was closed
    rises = reached & o
    out = []
    data = rises.to_bytes(size, "little")
    for match in _NONZERO.finditer(data):
        byte, index = match.group()[0], match.start()
        out += [start_ms + (index * 8 + bit) * SLOT_MS for bit in range(8) if byte >> bit & 1]
    return out


def access_summary(door_rows: dict[str, list[SummaryHour]], alerts: Sequence[AlertEntry], db_path: Path | None,
                   room: str, start_ms: int, end_ms: int, *, hours: WorkingHours, tz: dt.tzinfo) -> AccessSummary:
    """Openings of the room's doors, those outside working hours, unregistered entries, access sessions."""
    openings = [ts for rows in door_rows.values() for ts in door_openings(rows, start_ms, end_ms)]
    after = sum(not hours.is_working_time(dt.datetime.fromtimestamp(ts / 1000, tz)) for ts in openings)
    sessions: list[AccessSessionEntry] = []
    if db_path is not None and db_path.exists():
        sessions = [AccessSessionEntry(s.id, s.people, s.purpose, s.approval, s.opened_ms, s.opened_by, s.closed_ms,
                                       s.closed_by)
                    for s in read_sessions(db_path, room=room, start_ms=start_ms, end_ms=end_ms)]
    unregistered = sum(a.rule == "unregistered_entry" and start_ms <= (a.active_ms or a.opened_ms) < end_ms
                       for a in alerts)
    return AccessSummary(door_sensors=tuple(sorted(s for s, rows in door_rows.items() if rows)),
                         openings=len(openings), after_hours_openings=after, unregistered_entries=unregistered,
                         sessions=tuple(sessions))
