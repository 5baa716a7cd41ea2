"""The login limiter on its own: reservations under concurrency, sparse audit notices, bounded memory."""

from __future__ import annotations

import threading

from dashboards.web.ratelimit import BlockNotice, LoginLimiter


def test_attempts_are_reserved_so_concurrent_threads_cannot_pass_the_limit() -> None:
    limiter = LoginLimiter(per_account=5, per_address=1000)
    allowed: list[bool] = []
    start = threading.Barrier(40)

    def guess() -> None:
        start.wait()
        allowed.append(limiter.attempt("oper", "10.0.0.1", now=100.0).allowed)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 5  # whatever the interleaving: the check and the count are one step


def test_a_success_gives_the_reservation_back_and_clears_the_account() -> None:
    limiter = LoginLimiter(per_account=3, per_address=3)
    for _ in range(2):
        assert limiter.attempt("a", "ip", now=0.0).allowed  # two failures
    ok = limiter.attempt("a", "ip", now=1.0)
    limiter.succeeded(ok)
    # the account is clear, the address keeps its two failures (one address guessing many accounts)
    assert limiter.attempt("b", "ip", now=2.0).allowed
    refused = limiter.attempt("c", "ip", now=3.0)
    assert not refused.allowed and refused.retry_after == 897.0  # the first failure leaves at 900
    assert limiter.attempt("a", "other", now=3.0).allowed


def test_refusals_give_one_notice_per_limit_and_window_with_the_count() -> None:
    limiter = LoginLimiter(window_s=900, per_account=1, per_address=100)
    assert limiter.attempt("x", "ip", now=0.0).allowed
    notices = [limiter.attempt("x", "ip", now=float(t)).notice for t in range(1, 200)]
    assert notices[0] == BlockNotice("account:x", 1) and notices[1:] == [None] * 198
    assert limiter.pending_notices() == [BlockNotice("account:x", 198)]
    assert limiter.pending_notices() == []  # handed out once
    limiter.attempt("x", "ip", now=850.0)  # counted
    assert limiter.attempt("x", "ip", now=899.0).notice is None
    # the failure left the window at 900: tried again (a failure), refused again a window after the first notice
    assert limiter.attempt("x", "ip", now=901.0).allowed
    assert limiter.attempt("x", "ip", now=902.0).notice == BlockNotice("account:x", 3)


def test_memory_is_bounded_and_expired_keys_go_first() -> None:
    limiter = LoginLimiter(window_s=900, per_account=5, per_address=10**9, max_keys=1000)
    for i in range(30_000):  # a spray of names over the first 100 s
        limiter.attempt(f"user{i}", f"10.0.{i % 200}.1", now=i / 300)
        assert limiter.keys() <= 1000
    limiter.attempt("admin", "ip", now=1000.0)
    for i in range(950):  # new names: the spray's keys, all out of the window, go before admin's
        limiter.attempt(f"late{i}", "ip", now=1000.0 + i / 1000)
    assert limiter.keys() <= 1000
    assert len(limiter._recent("account:admin", 1001.0)) == 1
