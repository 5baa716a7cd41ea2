"""The alert engine's lock, with a priority lane for what must not wait behind a long batch."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

__all__ = ["EngineLock"]


class EngineLock:
    """The engine's lock with a priority lane: :meth:`urgent` holders go before the next :meth:`slice`.

    A thread judging a long batch takes the lock slice by slice; before each slice it waits while anyone
    waits in the priority lane, so they get the lock within one slice (CPython's plain lock is not fair:
    the releasing thread would often take it straight back).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lane = threading.Condition(threading.Lock())
        self._waiting = 0
        self.longest_hold_us = 0
        """The longest single hold of the lock so far (µs): the most smoke and leak may have waited."""

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            held = int((time.perf_counter() - started) * 1e6)
            if held > self.longest_hold_us:
                self.longest_hold_us = held

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """Hold the lock, ahead of any batch slice."""
        with self._lane:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._lane:
                self._waiting -= 1
                if not self._waiting:
                    self._lane.notify_all()
        try:
            with self._held():
                yield
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def slice(self) -> Iterator[None]:
        """Hold the lock for one slice of a batch, after everyone waiting in the priority lane."""
        with self._lane:
            while self._waiting:
                self._lane.wait()
        with self._lock, self._held():
            yield
