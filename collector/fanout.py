"""Runs slow consumers of stored readings (the alert engine, live views) off the store writer's thread.

The writer calls ``submit`` right after a commit; a daemon thread hands the items to the consumer in
order. The queue is bounded and ``submit`` blocks when it is full: a slow consumer slows ingest down
instead of losing what it has not seen yet.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ConsumerThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()


class ConsumerThread(Generic[T]):
    """One thread calling ``consume(item)`` for every submitted item, in order.

    Args:
        consume: called in the thread; an exception is logged and counted, never fatal.
        name: thread name (for logs and py-spy).
        max_items: queued items before ``submit`` blocks.
    """

    def __init__(self, consume: Callable[[T], None], *, name: str, max_items: int = 10_000) -> None:
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_items)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors = 0
        self.handled = 0

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item`` for the consumer (blocks while the queue is full)."""
        self._queue.put(item)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been consumed."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Consume what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._consume(item)  # type: ignore[arg-type]
                self.handled += 1
            except Exception:
                self.errors += 1
                log.exception("%s: consumer failed; continuing", self._thread.name)
