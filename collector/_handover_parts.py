"""The small parts of the serial hand-over (``collector.handover``): its self-metrics, what it keeps of a
refused message, a chunk handed to the sink and what came of it, and a per-minute log quota."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from archmon.domain import RawMessage
from archmon.errors import RetryLater

__all__ = ["Chunk", "HandoverStats", "LogQuota", "Outcome", "RefusedMessage", "nbytes", "reason"]


@dataclass(frozen=True, slots=True)
class HandoverStats:
    """Self-metrics of a hand-over.

    Attributes:
        buffered: messages held, not yet durable (waiting and in flight).
        buffered_bytes: their payload bytes.
        in_flight: messages handed to the sink whose future has not resolved.
        delivered: messages that became durable.
        dropped: oldest messages dropped because the buffer was full.
        refused: messages the store refused for good (logged, not retried).
        retries: hand-overs again after a transient failure or while the store is broken.
        handler_errors: sink calls that raised (their messages are handed over one by one).
        store_failures: episodes of a store refusing every message alike (kept and retried).
        lost_at_stop: messages a stop could not store: never taken by the store writer, or given up by
            it when it closed (with a spool: only those the spool could not take either).
        spilled: messages written to the disk spool (memory full while the store stalled, or not
            stored at a stop); a copy of a chunk in flight at the spill counts too.
        spool_rows: gauge: messages in the spool, not yet in the store.
        spool_bytes: gauge: their counted bytes (``collector.spool``).
        spool_oldest_ms: gauge: receive time of the oldest (0: empty).
        spool_max_bytes: the spool's bound (0: no spool).
        spool_warning: gauge: 1 while the spool holds more than half its bound.
    """

    buffered: int
    buffered_bytes: int
    in_flight: int
    delivered: int
    dropped: int
    refused: int
    retries: int
    handler_errors: int
    store_failures: int
    lost_at_stop: int
    spilled: int = 0
    spool_rows: int = 0
    spool_bytes: int = 0
    spool_oldest_ms: int = 0
    spool_max_bytes: int = 0
    spool_warning: int = 0

    def for_source(self) -> dict[str, int]:
        """What a serial source's ``stats()`` reports of its hand-over: every field but ``buffered_bytes`` and
        ``in_flight``."""
        out = asdict(self)
        del out["buffered_bytes"], out["in_flight"]
        return out


@dataclass(frozen=True, slots=True)
class RefusedMessage:
    """A message the store refused for good, and why."""

    message: RawMessage
    reason: str


@dataclass(eq=False, slots=True)
class Chunk:
    """Messages handed to the sink together; ``future`` once handed over at a stop (settled afterwards);
    ``spooled``: rows ``first``..``last`` of the spool hold them (read from it, or a copy written at a spill),
    removed from it once the chunk is settled."""

    messages: list[RawMessage]
    nbytes: int
    future: Future[Any] | None = None
    spooled: tuple[int, int] | None = None


class Outcome:
    """What one hand-over of some messages gave: durable, transient failure, refusal or (stop) pending."""

    __slots__ = ("error", "future")

    def __init__(self, error: BaseException | None = None, future: Future[Any] | None = None) -> None:
        """``error``: why not (None: durable); ``future``: handed over, not done when the stop came."""
        self.error = error
        self.future = future  # not done: the stop came while waiting

    @property
    def durable(self) -> bool:
        """Stored."""
        return self.error is None and self.future is None

    @property
    def transient(self) -> bool:
        """Failed for now (``RetryLater``): keep and hand over again (or, at a stop, lost)."""
        return isinstance(self.error, RetryLater)


def reason(error: BaseException) -> str:
    """``Type: text`` of an error: what tells two refusals apart."""
    return f"{type(error).__name__}: {error}"


def nbytes(messages: Sequence[RawMessage]) -> int:
    """Payload bytes of ``messages`` (what the byte bound counts)."""
    return sum(len(m.payload) for m in messages)


class LogQuota:
    """At most ``per_minute`` lines a minute; the lines left out are counted and said in the next one."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._window = 0.0
        self._used = 0
        self.skipped = 0

    def take(self) -> bool:
        """Whether one more line may be logged now (else it is counted in ``skipped``)."""
        now = time.monotonic()
        if now - self._window >= 60.0:
            self._window, self._used = now, 0
        self._used += 1
        if self._used <= self._per_minute:
            return True
        self.skipped += 1
        return False
