"""Login rate limiting per account and per address: failures in a sliding window lock further tries out.

In memory: a restart forgets the counts (the audit log keeps every failed login). Successful logins clear
the account's count, not the address's (one address guessing many accounts stays limited).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["LoginLimiter"]


@dataclass
class LoginLimiter:
    """Sliding-window failure counts.

    Attributes:
        window_s: how far back failures count.
        per_account: failures of one account name within the window before it is locked.
        per_address: failures from one client address within the window before it is locked.
    """

    window_s: float = 900.0
    per_account: int = 5
    per_address: int = 20
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, account: str, address: str) -> list[tuple[str, int]]:
        return [(f"account:{account.casefold()}", self.per_account), (f"address:{address}", self.per_address)]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, account: str, address: str, *, now: float | None = None) -> float:
        """Seconds until another try is allowed (0: allowed now)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(account, address):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(wait, times[len(times) - limit] + self.window_s - now)
        return wait

    def failed(self, account: str, address: str, *, now: float | None = None) -> None:
        """Count a failed login."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key, _ in self._keys(account, address):
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # bound memory under a spray of names
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, account: str) -> None:
        """A successful login clears its account's failures."""
        with self._lock:
            self._failures.pop(f"account:{account.casefold()}", None)
