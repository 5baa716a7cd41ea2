"""Keeping the outbox in step with the configuration and bounded on disk.

- :func:`drop_unconfigured` (at start and after a reload): queued deliveries of a channel that is no longer
  configured fail ("channel removed from config") and those of a contact no longer configured are
  cancelled, so their requests settle instead of waiting for ever; a contact whose address changed gets
  the queued ones at the new address. The persisted state of removed channels is dropped.
- :func:`apply_retention` (the service's hourly retention job, through ``Notifier.apply_retention``):
  settled deliveries and their attempts older than ``[notify] retention_days``, and received SMS older
  than that, are deleted. Deliveries still queued or sending are never touched, nor any delivery of an
  alert that is still open (a recovery message goes to whoever its deliveries say was told).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import NamedTuple

from alerts.notify.outbox import Outbox

__all__ = ["Dropped", "Removed", "apply_retention", "drop_unconfigured"]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class Dropped(NamedTuple):
    """What :func:`drop_unconfigured` did."""

    failed: int  # deliveries of removed channels
    cancelled: int  # deliveries of removed contacts
    readdressed: int  # deliveries moved to a contact's new address


def drop_unconfigured(outbox: Outbox, channels: Mapping[str, str | None],
                      addresses: Mapping[str, Mapping[str, str | None]]) -> Dropped:
    """Settle queued deliveries the configuration no longer sends.

    Args:
        outbox: the outbox.
        channels: configured channel → the contact field it sends to (None: a group robot).
        addresses: configured contact → field (``phone``, ``email``) → address.
    """
    failed = cancelled = readdressed = 0
    touched: set[int] = set()
    with outbox.tx() as conn:
        for row in conn.execute("SELECT id, request_id, channel, recipient, contact FROM notify_deliveries "
                                "WHERE status = 'queued'").fetchall():
            why = status = None
            if row["channel"] not in channels:
                why, status = "channel removed from config", "failed"
            elif row["contact"] is not None and row["contact"] not in addresses:
                why, status = "contact removed from config", "cancelled"
            elif row["contact"] is not None and channels[row["channel"]] is not None:
                new = addresses[row["contact"]].get(channels[row["channel"]] or "")
                if not new:
                    why, status = f"the contact has no {channels[row['channel']]} any more", "cancelled"
                elif new != row["recipient"] and _readdress(conn, row["id"], new):
                    readdressed += 1
            if why is None:
                continue
            conn.execute("UPDATE notify_deliveries SET status = ?, answer = ? WHERE id = ?", (status, why, row["id"]))
            failed += status == "failed"
            cancelled += status == "cancelled"
            if row["request_id"] is not None:
                touched.add(row["request_id"])
        outbox.settle(conn, touched)
        marks = ",".join("?" * len(channels))
        conn.execute(f"DELETE FROM notify_channel_state WHERE channel NOT IN ({marks})", tuple(channels))
    if failed or cancelled or readdressed:
        log.warning("notifier: %d queued delivery(ies) of removed channels failed, %d of removed contacts "
                    "cancelled, %d sent to a contact's new address instead", failed, cancelled, readdressed)
    return Dropped(failed, cancelled, readdressed)


def _readdress(conn: sqlite3.Connection, delivery_id: int, address: str) -> bool:
    try:
        conn.execute("UPDATE notify_deliveries SET recipient = ? WHERE id = ?", (address, delivery_id))
    except sqlite3.IntegrityError:  # the request already has a delivery to the new address
        conn.execute("UPDATE notify_deliveries SET status = 'cancelled', answer = 'the contact''s address changed' "
                     "WHERE id = ?", (delivery_id,))
        return False
    return True


class Removed(NamedTuple):
    """What :func:`apply_retention` deleted."""

    deliveries: int
    attempts: int
    inbox: int


def apply_retention(outbox: Outbox, now_ms: int, days: float) -> Removed:
    """Delete settled deliveries (with their attempts) and received SMS older than ``days`` (0: keep all)."""
    if days <= 0:
        return Removed(0, 0, 0)
    cutoff = now_ms - int(days * DAY_MS)
    try:
        open_alerts = {r[0] for r in outbox.query(
            "SELECT id FROM alert_alerts WHERE state IN ('pending', 'active', 'acknowledged', 'cleared')")}
    except sqlite3.OperationalError:  # no alert engine on this file
        open_alerts = set()
    with outbox.tx() as conn:
        rows = conn.execute("SELECT id, alert_id FROM notify_deliveries WHERE status IN ('sent', 'failed', "
                            "'cancelled') AND created_ms < ?", (cutoff,)).fetchall()
        ids = [r["id"] for r in rows if r["alert_id"] not in open_alerts]
        attempts = deliveries = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            attempts += conn.execute(f"DELETE FROM notify_attempts WHERE delivery_id IN ({marks})", chunk).rowcount
            deliveries += conn.execute(f"DELETE FROM notify_deliveries WHERE id IN ({marks})", chunk).rowcount
        inbox = conn.execute("DELETE FROM notify_inbox WHERE ts_ms < ?", (cutoff,)).rowcount
    removed = Removed(deliveries, attempts, inbox)
    if any(removed):
        log.info("notify retention (%g days) removed %s", days, removed._asdict())
    return removed
