"""What the pipeline decided about a message, kept for as long as the message lives.

Serial sources and the MQTT source hand a message over again when the store could not take it (a
chunk the store refused is handed over one message at a time; a chunk held back while the writer was
full is offered again). Handling the same message again must give the same result: the same
receive-time stamp (else its readings move and may be stored twice), the same quarantine decision
(else the flood limiter counts it twice). :class:`MessageMemo` keeps such decisions by message
*identity* (a copy the broker sends again is a new object, recognised by its receipt instead) and
forgets them when the source drops the message, so it holds no more than the sources hold.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from archmon.domain import RawMessage

__all__ = ["MessageMemo"]

V = TypeVar("V")


class MessageMemo(Generic[V]):
    """Values computed once per (message object, key); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a weakref callback may run in a thread already holding it
        self._entries: dict[int, tuple[weakref.ref[RawMessage], dict[Hashable, V]]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, message: RawMessage, key: Hashable, compute: Callable[[], V]) -> V:
        """The value computed for ``message`` and ``key`` before, else ``compute()`` (remembered).

        ``compute`` runs under the memo's lock: it must be quick and must not call the memo.
        """
        ident = id(message)
        with self._lock:
            entry = self._entries.get(ident)
            if entry is None or entry[0]() is not message:
                entry = (weakref.ref(message, lambda ref, ident=ident: self._forget(ident, ref)), {})
                self._entries[ident] = entry
            values = entry[1]
            if key not in values:
                values[key] = compute()
            return values[key]

    def _forget(self, ident: int, ref: weakref.ref[RawMessage]) -> None:
        with self._lock:
            entry = self._entries.get(ident)
            if entry is not None and entry[0] is ref:
                del self._entries[ident]
