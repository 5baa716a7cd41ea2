"""How the serial hand-over (``collector.handover``) spills to its disk spool and reads it back.

State (under the hand-over's lock): ``_spilled`` while the spool is the buffer (from the spill until the
spool is read to its end and nothing is left to write); ``_pending``, messages put since, waiting for
the spill thread, which writes them to the spool in one fsync'd transaction per round (bounded like the
memory buffer while the disk does not take them, oldest dropped); ``_spool_last`` and ``_read_upto``
mirror the spool's newest row and how far the delivery thread has read, so that no one waits on the disk
while holding the lock (:meth:`collector.handover.Handover.put` never blocks).

At the spill, the chunk in flight (handed to the store writer, waiting for the stalled store) is copied
to the spool first, marked as read: a crash before it is stored replays it, and once it is stored or
refused its copy is removed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

from archmon.domain import RawMessage
from collector._handover_parts import Chunk
from collector.spool import Spool

__all__ = ["SPOOL_WARN_FRACTION", "Spilling"]

log = logging.getLogger("collector.handover")

SPOOL_WARN_FRACTION = 0.5
"""Share of its bound at which a spool logs a warning and sets ``spool_warning`` (long before drops)."""

_RETRY_MIN_S = 0.1
_RETRY_MAX_S = 5.0


class Spilling:
    """Part of :class:`collector.handover.Handover`: the spool side (see the module docstring)."""

    _name: str
    _cond: threading.Condition
    _counts: dict[str, int]
    _in_flight: list[Chunk]
    _waiting: deque[RawMessage]
    _waiting_bytes: int
    _max_buffered: int
    _max_bytes: int
    _max_chunk: int
    _max_chunk_bytes: int
    _stopping: bool
    _dropped_in_stall: int
    _last_ms: int

    def _init_spill(self, spool: Spool | None) -> None:
        self._spool = spool
        self._spool_file: Path | None = spool.path if spool is not None else None
        self._pending: deque[RawMessage] = deque()
        self._pending_bytes = 0
        self._moved = (0, 0)  # messages and bytes moved from memory at the spill: not counted against the bound
        self._appending = 0  # messages the spill thread is writing now
        self._shadow: list[Chunk] = []  # chunks in flight at the spill: their copies are written first
        self._spiller_running = False  # (under the lock) set when the spill thread starts, cleared as it ends
        self._spool_warned = False
        self._spool_last = spool.last_seq if spool is not None else 0
        self._read_upto = 0
        self._spilled = self._spool_last > 0
        if spool is not None and self._spilled:
            self._last_ms = max(self._last_ms, spool.newest_ms)
            rows = spool.stats().rows
            log.warning("%s: the spool %s holds %d messages not stored by an earlier run; they are stored first",
                        self._name, spool.path, rows)

    def _spool_unread(self) -> bool:
        """(Under the lock.) The spool has rows the delivery thread has not read yet."""
        return self._spilled and self._read_upto < self._spool_last

    def _start_spill(self) -> bool:
        """(Under the lock; memory over its bound.) From now on messages go to the spool, the waiting ones too."""
        self._spilled = True
        self._shadow = [c for c in self._in_flight if c.spooled is None and c.future is None]
        self._pending.extend(self._waiting)
        self._pending_bytes += self._waiting_bytes
        self._moved = (len(self._waiting), self._waiting_bytes)  # (until the spill thread takes them)
        self._waiting.clear()
        self._waiting_bytes = 0
        self._ensure_spill_thread()
        return True

    def _queue_for_spool(self, message: RawMessage) -> bool:
        """(Under the lock; spilled.) ``message`` waits for the spill thread; past the memory bound (the disk
        does not take them fast enough, or fails) the oldest waiting are dropped, counted. True: the first
        drop of this stall."""
        self._pending.append(message)
        self._pending_bytes += len(message.payload)
        dropped = 0
        moved, moved_bytes = self._moved
        while len(self._pending) > 1 and (len(self._pending) > self._max_buffered + moved
                                          or self._pending_bytes > self._max_bytes + moved_bytes):
            old = self._pending.popleft()
            self._pending_bytes -= len(old.payload)
            dropped += 1
        if dropped:
            self._counts["dropped"] += dropped
            self._dropped_in_stall += dropped
        self._ensure_spill_thread()
        return dropped > 0 and self._dropped_in_stall == dropped

    def _end_spill(self) -> None:
        """(Under the lock.) The spool is read to its end and nothing waits to be written: back to memory."""
        self._spilled = False
        self._spool_warned = False
        log.warning("%s: the spool is read to its end; back to the memory buffer", self._name)

    def _ensure_spill_thread(self) -> None:
        """(Under the lock.) A flag, not ``is_alive()``: a thread that has decided to end (under the lock) is
        still alive for a moment, and what is queued meanwhile needs a new one."""
        if not self._spiller_running and self._spool is not None:
            self._spiller_running = True
            threading.Thread(target=self._spill_run, name=f"archmon-spool {self._name}", daemon=True).start()

    def _spill_run(self) -> None:
        try:
            self._spill_loop()
        finally:
            with self._cond:
                self._spiller_running = False
                if (self._pending or self._shadow) and not self._stopping:  # it died with work left
                    self._ensure_spill_thread()

    def _spill_loop(self) -> None:
        assert self._spool is not None
        delay = _RETRY_MIN_S
        while True:
            with self._cond:
                while not self._pending and not self._shadow:
                    if self._stopping or not self._spilled:
                        self._spiller_running = False
                        return
                    self._cond.wait(1.0)
                shadow, self._shadow = self._shadow, []
                batch = list(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
                self._moved = (0, 0)
                self._appending = len(batch)
            try:
                self._write_shadow(shadow)
                appended = self._spool.append(batch)
            except Exception as exc:
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                    self._pending_bytes += sum(len(m.payload) for m in batch)
                    self._appending = 0
                    stopping = self._stopping
                    if stopping:  # no time to retry: the stop hands them to the store writer, as from memory
                        self._waiting.extend(self._pending)
                        self._waiting_bytes += self._pending_bytes
                        self._pending.clear()
                        self._pending_bytes = 0
                        self._cond.notify_all()
                log.error("%s: cannot write %d messages to the spool %s (%s: %s); kept in memory, %s", self._name,
                          len(batch), self._spool.path, type(exc).__name__, exc,
                          "handed to the store writer by the stop" if stopping else "retrying")
                if stopping:
                    return
                threading.Event().wait(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            delay = _RETRY_MIN_S
            with self._cond:
                self._appending = 0
                self._counts["spilled"] += appended.last - appended.first + 1 if appended.last else 0
                self._counts["dropped"] += appended.dropped
                self._dropped_in_stall += appended.dropped
                if appended.last:
                    self._spool_last = max(self._spool_last, appended.last)
                self._cond.notify_all()
            if appended.dropped:
                log.warning("%s: the spool is full (%d bytes): dropped its %d oldest messages not yet handed to the "
                            "store; counted as dropped", self._name, self._spool.stats().max_bytes, appended.dropped)
            self._warn_if_filling()

    def _write_shadow(self, chunks: list[Chunk]) -> None:
        """Copy the chunks in flight at the spill to the spool (read already); a chunk settled meanwhile needs none."""
        assert self._spool is not None
        for chunk in chunks:
            with self._cond:
                messages = list(chunk.messages) if chunk in self._in_flight else []
            if not messages:
                continue
            appended = self._spool.append(messages, handed=True)
            with self._cond:
                self._counts["spilled"] += len(messages)
                self._spool_last = max(self._spool_last, appended.last)
                self._read_upto = max(self._read_upto, appended.last)
                settled = chunk not in self._in_flight
                if not settled:
                    chunk.spooled = (appended.first, appended.last)
            if settled:  # stored (or refused) while its copy was written: no copy needed
                self._spool.remove(appended.first, appended.last)

    def _take_spooled(self) -> Chunk | None:
        """The next chunk of spool rows (delivery thread, lock not held), registered as in flight; None if the
        rows are gone (dropped past the bound)."""
        assert self._spool is not None
        spooled = self._spool.read_next(max_rows=self._max_chunk, max_bytes=self._max_chunk_bytes)
        with self._cond:
            self._read_upto = max(self._read_upto, spooled.last)
            if not spooled.messages:
                return None
            chunk = Chunk(spooled.messages, sum(len(m.payload) for m in spooled.messages),
                          spooled=(spooled.first, spooled.last))
            self._in_flight.append(chunk)
            return chunk

    def _remove_rows(self, rows: tuple[int, int]) -> None:
        """The rows of a settled chunk leave the spool (a failure leaves them: replayed later, stored once)."""
        assert self._spool is not None
        try:
            self._spool.remove(*rows)
        except Exception:
            log.exception("%s: cannot remove rows %d-%d (stored) from the spool; they are stored again at the next "
                          "start (the store ignores the copies)", self._name, *rows)

    def _rewind_spool(self) -> None:
        """A new delivery thread reads the spool from its oldest row again (rows a stop left)."""
        if self._spool is None:
            return
        self._spool.rewind()
        last = self._spool.last_seq
        with self._cond:
            self._read_upto = 0
            self._spool_last = max(self._spool_last, last)
            if self._spool.stats().rows and not self._spilled:
                self._spilled = True

    def _warn_if_filling(self) -> None:
        assert self._spool is not None
        stats = self._spool.stats()
        filling = stats.bytes >= SPOOL_WARN_FRACTION * stats.max_bytes
        with self._cond:
            first = filling and not self._spool_warned
            self._spool_warned = self._spool_warned or filling
        if first:
            log.warning("%s: the spool %s holds %d messages, %d of its %d bytes (%.0f %%); past the bound its oldest "
                        "are dropped: make the store work again (see archmon status)", self._name, self._spool.path,
                        stats.rows, stats.bytes, stats.max_bytes, 100 * stats.bytes / stats.max_bytes)

    def _spool_stats(self) -> dict[str, Any]:
        """The spool's figures for ``HandoverStats`` (zeros without a spool)."""
        if self._spool is None:
            return {}
        stats = self._spool.stats()
        with self._cond:
            warned = self._spool_warned
        return {"spool_rows": stats.rows, "spool_bytes": stats.bytes, "spool_oldest_ms": stats.oldest_ms,
                "spool_max_bytes": stats.max_bytes, "spool_warning": int(warned)}
