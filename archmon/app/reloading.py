"""Parts of a reload (SIGHUP) that are not the service's own wiring: swapping the alert rules at their place
in the alert feed's order, and finding the open alerts of sensors a reload removes.

The swap is queued, never waited for: its place in the feed fixes which readings the old rules judge (those
stored before the reload) and which the new ones (every later one), so a reload returns at once even while
the engine works through a backlog or waits for a stalled database. A reload that fails after its swap was
queued cancels it; if the swap already ran, the old rules are swapped back, again in the feed's order.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from archmon.config import Config

__all__ = ["AlertSwap", "open_alerts_of"]

log = logging.getLogger("archmon.app")


class AlertSwap:
    """``alerts.reload(config)``, run once on the alert feed's thread unless cancelled first.

    Args:
        alerts: the ``AlertService``.
        config: the configuration to swap in.
        on_failure: called (on the feed's thread) with the exception when ``alerts.reload`` raised, and whether
            the engine took ``config`` all the same (its own audit entry failed after the swap, on a stalled
            database).
        removed: sensors the reload removed; their open alerts are closed after the swap if the alert service
            can (``AlertService.close_alerts_of_removed``).
    """

    def __init__(self, alerts: Any, config: Config, *, on_failure: Callable[[BaseException, bool], None],
                 removed: Collection[str] = ()) -> None:
        self._alerts = alerts
        self.config = config
        self._on_failure = on_failure
        self._removed = sorted(removed)
        self._lock = threading.Lock()
        self._cancelled = False
        self._started = False

    def run(self) -> None:
        """Swap the rules (on the feed's thread); a failure goes to ``on_failure``, never further."""
        with self._lock:
            if self._cancelled:
                return
            self._started = True
        try:
            if self._alerts.config is not self.config:
                self._alerts.reload(self.config)
            close = getattr(self._alerts, "close_alerts_of_removed", None)
            if close is not None and self._removed:
                close(self._removed, by="system", reason="sensor removed from the configuration by a reload")
        except Exception as exc:
            self._on_failure(exc, self._alerts.config is self.config)

    def cancel(self) -> bool:
        """Do not swap after all; True if it is too late (the swap ran or is running: swap back)."""
        with self._lock:
            self._cancelled = True
            return self._started


def open_alerts_of(db_path: Path, sensors: Collection[str]) -> list[str]:
    """The open (pending, active, acknowledged) alerts of ``sensors``, one line each
    (``alert 12 band th2 active``); none when the alert tables cannot be read (read-only, never waits)."""
    if not sensors:
        return []
    from alerts.store import AlertReader

    wanted = set(sensors)
    try:
        with AlertReader(db_path) as reader:
            rows = reader.alerts(active_only=True, limit=100_000)
    except (sqlite3.Error, OSError) as exc:
        log.debug("reload: open alerts not read: %s", exc)
        return []
    return [f"alert {row['id']} {row['rule']} {row['sensor']} {row['state']}" for row in reversed(rows)
            if row.get("sensor") in wanted]
