"""Warning once per repeated condition, in memory that devices cannot grow without bound.

The pipeline warns once per unassigned device, per kind of ignored chatter, per quarantined topic and
per sensor with a bad clock, then logs the same condition at DEBUG (the counters go on counting). The
keys of most of these come from devices (topics), so each *category* keeps at most ``max_keys`` of
them: past that, new keys are logged at DEBUG, after one warning saying so. Categories are apart, so a
rogue client inventing thousands of topics never silences the one warning about a sensor's clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

__all__ = ["WarnOnce"]


class WarnOnce:
    """Logs a condition at WARNING the first time its key is seen in its category, then at DEBUG.

    Thread-safe (the MQTT network thread and a chunk's split thread both log through it).

    Args:
        logger: where the lines go.
        max_keys: keys remembered per category.
    """

    def __init__(self, logger: logging.Logger, *, max_keys: int = 10_000) -> None:
        self._log = logger
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._seen: dict[str, set[Hashable]] = {}
        self._full: set[str] = set()  # categories that said they are full

    def __call__(self, category: str, key: Hashable, fmt: str, *args: object) -> None:
        """Log ``fmt % args`` at WARNING if ``key`` is new in ``category``, else at DEBUG."""
        with self._lock:
            seen = self._seen.setdefault(category, set())
            new = key not in seen and len(seen) < self._max_keys
            if new:
                seen.add(key)
            full = not new and key not in seen and category not in self._full
            if full:
                self._full.add(category)
        if full:
            self._log.warning("more than %d distinct %s conditions: further new ones are logged at DEBUG only "
                              "(the counters still count them)", self._max_keys, category)
        self._log.log(logging.WARNING if new else logging.DEBUG, fmt, *args, stacklevel=2)

    def keys(self, category: str) -> int:
        """How many keys ``category`` remembers (for tests and status)."""
        with self._lock:
            return len(self._seen.get(category, ()))

