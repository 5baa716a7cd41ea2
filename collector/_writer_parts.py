"""The small parts of the store writer (``collector.writer``): its errors, what it needs of a store, its
self-metrics and a queued batch."""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from archmon.errors import RetryLater
from collector.records import Batch, WriteResult

__all__ = ["BatchStore", "QueuedBatch", "WriterClosed", "WriterFull", "WriterStats", "is_transient", "weight_of"]


class WriterFull(RetryLater):
    """``submit(timeout=...)`` found the queue full for that long: nothing was queued; offer the batch again."""


class WriterClosed(RetryLater):
    """The writer is closed (``submit``) or gave up at close before committing (a future): not stored.

    Never a refusal of the batch: its messages are fine, the service is stopping. Sources count them
    as lost at stop (serial) or leave them unacknowledged (MQTT).
    """


class BatchStore(Protocol):
    """What the writer needs from a store: write several batches in one transaction."""

    def write_many(self, batches: list[Batch]) -> list[WriteResult]:
        """Write ``batches`` atomically; one result per batch."""
        ...


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Self-metrics of the writer.

    Attributes:
        queued_records: records submitted and not yet committed (queued or being written).
        queued_batches: submitted batches not yet taken by the writer thread.
        committed_batches: transactions committed.
        committed_readings: readings newly stored; duplicates: duplicate readings ignored.
        failures: failed write attempts (each is retried); rejected: batches the store refused for good.
        abandoned_records: records given up when the writer closed with the store still failing.
        listener_errors: exceptions raised by listeners.
        retrying: True while the current transaction is failing and being retried.
        last_error: text of the most recent write error ("" if none).
    """

    queued_records: int
    queued_batches: int
    committed_batches: int
    committed_readings: int
    duplicates: int
    failures: int
    rejected: int
    abandoned_records: int
    listener_errors: int
    retrying: bool
    last_error: str


@dataclass(slots=True)
class QueuedBatch:
    """A submitted batch, its future, its submit order and its weight (records), and when it was queued."""

    batch: Batch
    future: Future[WriteResult]
    seq: int
    weight: int
    enqueued: float


def weight_of(batch: Batch) -> int:
    """Records of ``batch`` (what the queue bound counts; at least 1)."""
    return max(1, len(batch.readings) + len(batch.quarantine) + len(batch.unassigned) + len(batch.availability))


def is_transient(exc: BaseException) -> bool:
    """A failure to retry (a locked or busy file, an I/O error), not a refusal of the batch."""
    return isinstance(exc, sqlite3.OperationalError | OSError | RetryLater)
