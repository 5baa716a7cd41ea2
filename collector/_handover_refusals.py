"""What the serial hand-over (``collector.handover``) does with a refusal, and with what a stop leaves.

A refusal (a sink error that is not ``RetryLater``):

- a chunk of several is handed over again one message at a time (all at once, so the writer tries them
  in one go), so the good ones land; a message refused alone is logged with its payload (at most
  :data:`REFUSAL_LOG_PER_MINUTE` lines a minute, the rest counted), counted (``refused``) and kept in
  ``Handover.refused()`` (the last :data:`REFUSED_KEPT`), never retried forever;
- when *every* message of such a round is refused with the same error, or a message alone is refused
  as from a corrupt file (``sqlite3.DatabaseError`` itself: a trickle of one-line chunks), the store is
  broken, not the messages: they are all kept and retried with backoff (``store_failures`` counts such
  episodes, ``retries`` the attempts), as for a stall. A constraint error (``sqlite3.IntegrityError``)
  is always about the message.

At a stop, every chunk is handed to the store writer without waiting (it queues them for its final
flush); what it gives up goes to the spool (``spilled``), or without one (or when the spool cannot
take it) is counted ``lost_at_stop``; rows read from the spool simply stay in it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from archmon.domain import RawMessage
from collector._handover_parts import Chunk, LogQuota, Outcome, RefusedMessage, reason
from collector.spool import Spool

__all__ = ["REFUSAL_LOG_PER_MINUTE", "REFUSED_KEPT", "RefusalsAndStop"]

log = logging.getLogger("collector.handover")

REFUSED_KEPT = 100
"""Messages refused for good that are kept in memory (with the reason) for inspection."""

REFUSAL_LOG_PER_MINUTE = 10
"""Refused messages logged (with their payload) per minute and hand-over; the others are counted only."""


class RefusalsAndStop:
    """Part of :class:`collector.handover.Handover`: refusals and the end of a stop (see the module docstring)."""

    _name: str
    _cond: threading.Condition
    _counts: dict[str, int]
    _in_flight: list[Chunk]
    _refused: deque[RefusedMessage]
    _refusal_log: LogQuota
    _store_error: str | None
    _spool: Spool | None
    _attempt: Callable[..., Outcome]
    _result: Callable[[Future[Any]], Outcome]
    _settled: Callable[..., None]

    def _split(self, chunk: Chunk, error: BaseException) -> None:
        """The store refused ``chunk``: hand its messages over one by one. Settles the durable and the refused
        ones; keeps the rest in ``chunk`` (transient failures, or all of them when the store is broken)."""
        messages = list(chunk.messages)
        if len(messages) > 1:
            log.warning("%s: the store refused %d messages (%s); handing them over one by one", self._name,
                        len(messages), error)
            # All at once: the writer tries them in one transaction and splits it itself.
            pending = [(m, self._attempt([m], wait=False)) for m in messages]
            outcomes = [(m, o if o.future is None else self._result(o.future)) for m, o in pending]
        else:
            outcomes = [(messages[0], Outcome(error))]
        durable = [m for m, o in outcomes if o.durable]
        refusals = {reason(o.error) for _, o in outcomes if o.error is not None and not o.transient}
        refused = [(m, o.error) for m, o in outcomes if o.error is not None and not o.transient]
        if durable:
            self._settled(chunk, durable, "delivered")
        alike = len(refused) == len(messages) and len(refusals) == 1
        # Several refused alike, or one refused as a corrupt file (SQLITE_CORRUPT / NOTADB are DatabaseError
        # itself, never a subclass): a broken store. A constraint error is always about the message.
        if alike and (type(refused[0][1]) is sqlite3.DatabaseError
                      or (len(messages) > 1 and not isinstance(refused[0][1], sqlite3.IntegrityError))):
            (text,) = refusals
            with self._cond:
                self._counts["store_failures"] += 1
            self._store_error = text
            log.error("%s: the store refuses every message alike (%s): it is broken, not the messages; keeping "
                      "%d messages and retrying (counted store_failures)", self._name, text, len(messages))
            return
        for message, failure in refused:
            assert failure is not None
            self._refuse(chunk, message, failure)

    def _refuse(self, chunk: Chunk, message: RawMessage, error: BaseException) -> None:
        why = reason(error)
        if self._refusal_log.take():
            skipped, self._refusal_log.skipped = self._refusal_log.skipped, 0
            log.error("%s: the store refused a message for good (%s); not retried. %s at %d ms, payload %r%s",
                      self._name, why, message.topic, message.received_ms, message.payload[:200],
                      f" ({skipped} more refused without a log line)" if skipped else "")
        else:
            log.debug("%s: the store refused a message for good (%s)", self._name, why)
        with self._cond:
            self._refused.append(RefusedMessage(message, why))
        self._settled(chunk, [message], "refused")

    # -- at a stop --------------------------------------------------------------------------------

    def _hand_over_at_stop(self, chunk: Chunk) -> None:
        """Stopping: hand ``chunk`` to the sink without waiting (the store writer queues it for its final
        flush); what it cannot take is given up (spooled or lost)."""
        outcome = self._attempt(chunk.messages, wait=False)
        if outcome.future is not None:
            chunk.future = outcome.future
        elif outcome.transient:
            self._give_up_at_stop([chunk])
        else:
            assert outcome.error is not None
            self._split_at_stop(chunk, outcome.error)

    def _settle_at_stop(self, lost_before: int) -> None:
        """Wait for every chunk handed over at the stop (the writer's final flush decides) and count the lost."""
        with self._cond:
            handed = [c for c in self._in_flight if c.future is not None]
        given_up: list[Chunk] = []
        for chunk in handed:
            assert chunk.future is not None
            outcome = self._result(chunk.future)
            if outcome.durable:
                self._settled(chunk, chunk.messages, "delivered")
            elif outcome.transient:
                given_up.append(chunk)
            else:
                assert outcome.error is not None
                self._split_at_stop(chunk, outcome.error)
        self._give_up_at_stop(given_up, lost_before)

    def _split_at_stop(self, chunk: Chunk, error: BaseException) -> None:
        self._split(chunk, error)
        if chunk.messages:  # kept for a retry there is no time for: transient failures, a broken store
            self._give_up_at_stop([chunk])

    def _give_up_at_stop(self, chunks: list[Chunk], lost_before: int | None = None) -> None:
        """The store did not take ``chunks`` at the stop: rows of the spool stay there, the other messages go to
        the spool, or without one are lost (counted ``lost_at_stop``). With ``lost_before`` (the count when
        the thread started), the stop is over: the lost are logged (before they leave the buffer, so whoever
        waits for it to empty finds the line written)."""
        kept = [c for c in chunks if c.spooled is not None]
        loose = [c for c in chunks if c.spooled is None]
        spooled = self._spool_at_stop([m for c in loose for m in c.messages]) if loose else False
        with self._cond:
            lost = self._counts["lost_at_stop"] - (lost_before or 0) + (
                0 if spooled else sum(len(c.messages) for c in loose))
        if lost and lost_before is not None:
            log.error("%s: %d messages read before the stop were not stored (the store writer gave them up or "
                      "was closed); counted lost_at_stop", self._name, lost)
        if kept:
            log.warning("%s: %d messages of the spool were not stored before the stop; they stay in the spool "
                        "(stored at the next start)", self._name, sum(len(c.messages) for c in kept))
        for chunk in kept:
            self._settled(chunk, chunk.messages, keep_rows=True)
        for chunk in loose:
            self._settled(chunk, chunk.messages, "spilled" if spooled else "lost_at_stop")

    def _spool_at_stop(self, messages: list[RawMessage]) -> bool:
        """Write what the store did not take at a stop to the spool; False: no spool, or it failed."""
        if self._spool is None:
            return False
        try:
            dropped = self._spool.append(messages).dropped
        except Exception:
            log.exception("%s: cannot write %d messages the store did not take at the stop to the spool",
                          self._name, len(messages))
            return False
        if dropped:
            with self._cond:
                self._counts["dropped"] += dropped
        log.warning("%s: %d messages the store did not take at the stop are in the spool (stored at the next start)",
                    self._name, len(messages))
        return True
