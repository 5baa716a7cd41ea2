"""The service's forwarding: the outbox hooked into the store's transactions, the forwarder thread, the
``forwarding`` alert rule's link to it, and raw retention that keeps what still has to be queued again.

Built only when ``[forward.influxdb]`` is configured and enabled (a restart applies changes to it).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archmon.config import Config
from collector.forward import Forwarder, ForwardHealth, make_client
from collector.forward.hook import attach_outbox
from collector.store import SqliteStore

__all__ = ["FORWARD_GAUGES", "FORWARD_STATS", "Forwarding", "build_forwarding"]

log = logging.getLogger("archmon.app")

FORWARD_STATS = "forward.influxdb"
"""Prefix of the forwarder's numbers in the store's counters and gauges."""
FORWARD_GAUGES = frozenset({"up", "outbox_rows", "outbox_bytes", "oldest_age_s", "overflow_pending"})
"""States among :meth:`Forwarder.stats` (the rest are counters)."""
_DAY_MS = 86_400_000


class Forwarding:
    """The outbox and forwarder of one running service.

    Args:
        config: the configuration (``config.forward.active`` must be set).
        store: the readings store; the outbox becomes one of its write hooks.
        db_path: the database file.
        busy_timeout_s: how long one of the outbox's own writes waits for a lock.
    """

    def __init__(self, config: Config, store: SqliteStore, db_path: Path, *, busy_timeout_s: float = 1.0) -> None:
        target = config.forward.active
        if target is None:
            raise ValueError("no [forward.influxdb] target is configured and enabled")
        self.target = target
        outbox = attach_outbox(config, store, busy_timeout_s=busy_timeout_s)
        assert outbox is not None  # config.forward.active is set
        self.outbox = outbox
        self.forwarder = Forwarder(self.outbox, lambda: make_client(config), raw=store.readings,
                                   batch_size=target.batch_size, retry_min_s=target.retry_min_s,
                                   retry_max_s=target.retry_max_s, warn_age_ms=int(target.warn_age_s * 1000))
        log.info("forwarding readings to %s (%s API) through the outbox in %s", target.url, target.api, db_path)

    def start(self) -> None:
        """Start the forwarder thread."""
        self.forwarder.start()

    def stop(self, timeout: float) -> bool:
        """Stop the forwarder within ``timeout`` (a request under way is abandoned: its rows stay queued)."""
        ended = self.forwarder.stop(timeout)
        if ended:
            self.outbox.close()
        return ended

    def stats(self) -> dict[str, int]:
        """The forwarder's counters and states (see :data:`FORWARD_GAUGES`)."""
        return self.forwarder.stats()

    def forward_health(self) -> Sequence[ForwardHealth]:
        """Every target's state, for the ``forwarding`` alert rule (none while the file cannot be read)."""
        try:
            return [self.forwarder.health()]
        except sqlite3.Error as exc:
            log.debug("forward: health not read: %s", exc)
            return []

    def attach(self, alerts: Any) -> None:
        """Give the alert engine's ``forwarding`` rule this target's health (again after a reload swapped the
        engine; a scheduled job calls this every few seconds)."""
        engine = getattr(alerts, "engine", None)
        for rule in getattr(engine, "rules", ()):
            if getattr(rule, "name", "") == "forwarding" and getattr(rule, "source", None) is not self:
                rule.attach(self)

    def retention_days(self, configured: int, now_ms: int) -> int:
        """Raw retention that keeps readings still to be queued again (stored while the outbox was full).

        Returns:
            ``configured``, or more days when an overflow range reaches further back (0 stays 0: forever).
        """
        if configured <= 0:
            return configured
        try:
            lo = self.outbox.totals().overflow_lo_ts
        except sqlite3.Error:
            return configured
        if lo is None:
            return configured
        needed = math.ceil((now_ms - lo) / _DAY_MS) + 1
        if needed > configured:
            log.warning("retention: raw readings kept %d days instead of %d: readings stored while the forward "
                        "outbox was full still have to be queued again", needed, configured)
        return max(configured, needed)


def build_forwarding(config: Config, store: SqliteStore, db_path: Path, *,
                     busy_timeout_s: float = 1.0) -> Forwarding | None:
    """The service's forwarding, or None when no target is configured and enabled."""
    if config.forward.active is None:
        return None
    return Forwarding(config, store, db_path, busy_timeout_s=busy_timeout_s)
