"""Transactions of the alert store: one write transaction per unit of change, or one per judged batch.

Every state change and its audit entry are one unit (:meth:`Transactions.tx`). Inside
:meth:`Transactions.batch` (the live engine judging one committed batch of readings) the units share one
transaction, each in its own savepoint, so a batch costs one commit; a notification request commits at once
(:meth:`Transactions.flush_requests`), so the channels see a smoke alarm before the rest of the batch.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator

__all__ = ["Transactions"]

log = logging.getLogger(__name__)


class Transactions:
    """Mixin of :class:`~alerts.store.AlertStore`: ``tx``, ``batch`` and ``flush_requests`` on ``self.conn``."""

    conn: sqlite3.Connection
    _lock: threading.RLock
    _depth: int = 0
    _batching: bool = False
    _units: int = 0  # units written in the batch's open transaction
    writes: int = 0  # write units (transactions or savepoints) since the store was opened
    _requests: bool = False  # a notification request is in the batch's open transaction

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (re-entrant: nested uses join the outer one).

        Inside :meth:`batch` it is a savepoint of the batch's transaction (begun at the first write): it
        is undone alone if it fails, and committed with the batch.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            if self._batching:
                with self._unit():
                    yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
                self.writes += 1
            finally:
                self._depth = 0

    @contextlib.contextmanager
    def _unit(self) -> Iterator[None]:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self._units = 0
        self.conn.execute("SAVEPOINT unit")
        self._depth = 1
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK TO unit")
                self.conn.execute("RELEASE unit")
            elif self._units:
                log.error("SQLite rolled back the alert batch's transaction: %d earlier write(s) of this "
                          "batch are lost", self._units)
            raise
        else:
            self.conn.execute("RELEASE unit")
            self._units += 1
            self.writes += 1
        finally:
            self._depth = 0

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group every write made inside into one transaction, begun at the first write (none: no SQL).

        Each :meth:`tx` inside is a savepoint, undone alone if it fails, as it would have been alone. The
        transaction commits when the block ends (also when it raises: what was written stays written) or
        earlier through :meth:`flush_requests`. The store is held by this thread for the whole block.
        Nested batches join the outer one.
        """
        with self._lock:
            if self._batching or self._depth:
                yield
                return
            self._batching = True
            try:
                yield
            finally:
                self._batching = False
                self._commit_batch()

    def flush_requests(self) -> None:
        """Inside :meth:`batch`: commit now if a notification request was queued (channels see it at once)."""
        if self._requests and not self._depth:
            with self._lock:
                self._commit_batch()

    def _commit_batch(self) -> None:
        self._requests = False
        if not self.conn.in_transaction:
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            log.error("commit of the alert batch failed: %d write(s) lost", self._units)
            raise
        finally:
            self._units = 0
