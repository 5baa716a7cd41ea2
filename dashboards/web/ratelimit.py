"""Login rate limiting per account and per address: failures in a sliding window lock further tries out.

An attempt is **reserved** before the password is checked (:meth:`LoginLimiter.attempt`, under the lock):
it counts as a failure from that moment, and a success gives the address's back
(:meth:`LoginLimiter.succeeded`). So concurrent requests cannot all pass the check before any of them
has failed: at most ``per_account`` guesses per account, ``per_address`` per address, in any window.

In memory: a restart forgets the counts (the audit log keeps every failed login). Successful logins clear
the account's count, not the address's (one address guessing many accounts stays limited). Memory is
bounded: past ``max_keys`` keys, keys whose failures all left the window go first, then the keys that
failed longest ago, down to nine tenths of the bound (so the scan happens once per tenth, not per attempt).
A key forgotten that way cost its attacker as many failures from elsewhere.

Refused attempts are audited sparingly: :meth:`LoginLimiter.attempt` hands out a :class:`BlockNotice` for
the first refusal per blocking key per window, carrying how many refusals it stands for (the ones since
the previous notice of that key); :meth:`LoginLimiter.pending_notices` gives the rest (at shutdown).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["Attempt", "BlockNotice", "LoginLimiter"]


@dataclass(frozen=True, slots=True)
class BlockNotice:
    """What to write to the audit log about refused logins of one key.

    Attributes:
        key: ``account:NAME`` or ``address:IP``, the limit that refused.
        refused: refused attempts this notice stands for (since the previous notice of the key).
    """

    key: str
    refused: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """The limiter's answer to a login attempt.

    Attributes:
        allowed: the password may be checked; the attempt already counts as a failure until
            :meth:`LoginLimiter.succeeded` gives it back.
        retry_after: seconds until another try is allowed (0 when allowed).
        account: the account name tried; address: the client address.
        stamp: when it was reserved (monotonic seconds).
        notice: for a refused attempt, what to audit (None: counted into a later notice).
    """

    allowed: bool
    retry_after: float
    account: str
    address: str
    stamp: float
    notice: BlockNotice | None = None


@dataclass(slots=True)
class _Refusals:
    noticed_at: float
    pending: int = 0


@dataclass
class LoginLimiter:
    """Sliding-window failure counts.

    Attributes:
        window_s: how far back failures count.
        per_account: failures of one account name within the window before it is locked.
        per_address: failures from one client address within the window before it is locked.
        max_keys: bound on the keys held (accounts and addresses).
    """

    window_s: float = 900.0
    per_account: int = 5
    per_address: int = 20
    max_keys: int = 10_000
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _refusals: dict[str, _Refusals] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _account_key(account: str) -> str:
        return f"account:{account.casefold()}"

    def _keys(self, account: str, address: str) -> list[tuple[str, int]]:
        return [(self._account_key(account), self.per_account), (f"address:{address}", self.per_address)]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def attempt(self, account: str, address: str, *, now: float | None = None) -> Attempt:
        """Reserve a login attempt, or refuse it.

        Returns:
            An allowed attempt (counted as a failure already), or a refused one with its wait and, for the
            first refusal of its key in a window, the notice to audit.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            wait, blocking = 0.0, ""
            keys = self._keys(account, address)
            for key, limit in keys:
                times = self._recent(key, now)
                if len(times) >= limit:
                    until = times[len(times) - limit] + self.window_s - now
                    if until > wait:
                        wait, blocking = until, key
            if wait > 0:
                return Attempt(False, wait, account, address, now, self._refused(blocking, now))
            for key, _ in keys:
                self._failures.setdefault(key, deque()).append(now)
                self._failures.move_to_end(key)
            if len(self._failures) > self.max_keys:
                self._prune(now)
            return Attempt(True, 0.0, account, address, now)

    def _refused(self, key: str, now: float) -> BlockNotice | None:
        seen = self._refusals.get(key)
        if seen is None or now - seen.noticed_at >= self.window_s:
            refused = 1 + (seen.pending if seen else 0)
            self._refusals[key] = _Refusals(now)
            if len(self._refusals) > self.max_keys:
                for old in [k for k, r in self._refusals.items() if now - r.noticed_at >= self.window_s]:
                    del self._refusals[old]
            return BlockNotice(key, refused)
        seen.pending += 1
        return None

    def _prune(self, now: float) -> None:
        """Drop keys with no failure left in the window; if still too many, those that failed longest ago."""
        for key in [k for k, times in self._failures.items() if not times or times[-1] <= now - self.window_s]:
            del self._failures[key]
        while len(self._failures) > self.max_keys * 9 // 10:
            self._failures.popitem(last=False)

    def succeeded(self, attempt: Attempt) -> None:
        """The attempt's password was right: its account's failures are cleared and the address's reserved
        failure is given back."""
        with self._lock:
            self._failures.pop(self._account_key(attempt.account), None)
            times = self._failures.get(f"address:{attempt.address}")
            if times is not None:
                with contextlib.suppress(ValueError):  # already out of the window
                    times.remove(attempt.stamp)

    def pending_notices(self) -> list[BlockNotice]:
        """Refusals not audited yet (counted after each key's last notice); clears them."""
        with self._lock:
            out = [BlockNotice(key, seen.pending) for key, seen in self._refusals.items() if seen.pending]
            for seen in self._refusals.values():
                seen.pending = 0
            return out

    def keys(self) -> int:
        """How many account and address keys are held (memory bound checks)."""
        with self._lock:
            return len(self._failures)
