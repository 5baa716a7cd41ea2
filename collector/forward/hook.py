"""Every writer of the site file queues what it stores for forwarding: the outbox as a store's write hook.

``archmon run``, ``archmon import``, :func:`collector.backfill.backfill` (the demo's history) and whatever
else writes readings into the site's SQLite file call :func:`attach_outbox` on their store when
``[forward.influxdb]`` is configured and enabled, so every reading stored is also queued in the same
transaction: readings loaded from a logger's export reach InfluxDB like live ones (the running service's
forwarder sends them; without one they wait in the outbox for the next ``archmon run``). Idempotent per
store: a second call returns the outbox already hooked.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from archmon.config import Config
from collector.forward.outbox import Outbox
from collector.forward.setup import outbox_limits
from collector.records import WriteResult

__all__ = ["attach_outbox", "hooked_outbox"]

_HOOKED: weakref.WeakKeyDictionary[object, Outbox] = weakref.WeakKeyDictionary()


class HookableStore(Protocol):
    """A store with a write hook (``SqliteStore``)."""

    @property
    def path(self) -> Path: ...

    def add_write_hook(self, hook: Callable[[sqlite3.Connection, Sequence[WriteResult]], None]) -> None: ...


def hooked_outbox(store: object) -> Outbox | None:
    """The outbox :func:`attach_outbox` hooked into ``store``, or None."""
    try:
        return _HOOKED.get(store)
    except TypeError:  # not weak-referenceable: never hooked here
        return None


def attach_outbox(config: Config, store: HookableStore, *, busy_timeout_s: float = 1.0) -> Outbox | None:
    """Open the outbox in ``store``'s file and add it as the store's write hook, when forwarding is on.

    Args:
        config: the site's configuration (``config.forward.active``: the target, its outbox bound; the site's
            name is every line's ``site`` tag).
        store: the readings store (``SqliteStore``) writing the site file.
        busy_timeout_s: how long one of the outbox's own writes waits for a lock.

    Returns:
        The outbox (opened: its tables exist), or None when no target is configured and enabled. The caller
        closes it when done with it; closing ends only the outbox's own connections (acknowledgements,
        reads): the hook writes on the store's connection and keeps queueing.
    """
    target = config.forward.active
    if target is None:
        return None
    found = hooked_outbox(store)
    if found is not None:
        return found
    outbox = Outbox(store.path, site=config.site.name, limits=outbox_limits(target),
                    busy_timeout_s=busy_timeout_s).open()
    store.add_write_hook(outbox.enqueue)
    _HOOKED[store] = outbox
    return outbox
