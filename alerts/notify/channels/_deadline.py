"""One overall time bound for one attempt of a network channel: name lookup, connect, TLS, request, answer.

Socket timeouts bound each read, not the request: a server that trickles one byte every two seconds keeps a
``timeout_s = 3`` request alive for ever, and ``getaddrinfo`` has no timeout at all. An
:class:`AttemptDeadline` bounds the whole attempt instead:

- :meth:`AttemptDeadline.connect` looks the name up in a daemon thread and waits for it no longer than the
  time left (an IP literal needs no lookup), then connects with the time left as the socket timeout;
- :meth:`AttemptDeadline.watch` arms a timer that shuts the connection's socket down when the time is up,
  so a read blocked in the kernel returns at once; the caller's error handling sees a broken connection
  and :attr:`AttemptDeadline.expired` says why.

At most :data:`MAX_HANGING_LOOKUPS` lookups may hang at once; beyond that an attempt fails at once instead
of starting yet another thread (a resolver that never answers must not cost a thread per retry).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from archmon.shutdown import Deadline

__all__ = ["MAX_HANGING_LOOKUPS", "AttemptDeadline", "DeadlineExceeded", "getaddrinfo"]

MAX_HANGING_LOOKUPS = 4
getaddrinfo: Callable[..., list[Any]] = socket.getaddrinfo
"""The resolver (a module attribute so that a test can put a resolver that hangs in its place)."""
_lookups = threading.BoundedSemaphore(MAX_HANGING_LOOKUPS)


class DeadlineExceeded(TimeoutError):
    """The attempt's time is up (a subclass of ``OSError``, so network error handling takes it)."""


class AttemptDeadline:
    """The time bound of one attempt.

    Args:
        timeout_s: the whole attempt's time, from now.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = Deadline(timeout_s)
        self.expired = False

    def left(self, what: str) -> float:
        """Seconds left.

        Raises:
            DeadlineExceeded: none left (``what`` says what was being done).
        """
        left = self.deadline.left()
        if left <= 0:
            self.expired = True
            raise DeadlineExceeded(f"no answer within {self.timeout_s:g} s ({what})")
        return left

    def resolve(self, host: str, port: int) -> list[Any]:
        """``getaddrinfo`` for a TCP connection, waited for no longer than the time left.

        Raises:
            DeadlineExceeded: the lookup did not answer in time (it goes on in its thread, bounded).
            OSError: the name does not resolve.
        """
        try:
            return getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError):
            pass  # a name, not an IP literal
        if not _lookups.acquire(blocking=False):
            raise DeadlineExceeded(f"name lookup of {host} not attempted: {MAX_HANGING_LOOKUPS} earlier lookups "
                                   "still have no answer (is the DNS server reachable?)")
        result: list[Any] = []
        failure: list[BaseException] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                result.extend(getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except BaseException as exc:  # handed to the waiting caller
                failure.append(exc)
            finally:
                _lookups.release()
                done.set()

        threading.Thread(target=lookup, name=f"notify-dns {host}", daemon=True).start()
        if not done.wait(self.left(f"name lookup of {host}")):
            self.expired = True
            raise DeadlineExceeded(f"no answer within {self.timeout_s:g} s (name lookup of {host})")
        if failure:
            raise failure[0]
        return result

    def connect(self, host: str, port: int, per_op_timeout_s: float | None = None) -> socket.socket:
        """A TCP connection to ``host:port`` within the time left (each address tried in turn).

        Raises:
            DeadlineExceeded: out of time; OSError: every address refused or failed.
        """
        error: OSError | None = None
        for family, kind, proto, _, address in self.resolve(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(min(per_op_timeout_s or self.timeout_s, self.left(f"connecting to {host}")))
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                if isinstance(exc, DeadlineExceeded):
                    raise
                error = exc
        raise error or OSError(f"{host} has no address")

    @contextmanager
    def watch(self, current: Callable[[], socket.socket | None]) -> Iterator[None]:
        """While inside, shut down ``current()`` (the connection's socket now: it changes with STARTTLS) when
        the time is up."""
        def fire() -> None:
            self.expired = True
            sock = current()
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

        timer = threading.Timer(max(0.0, self.deadline.left()), fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def explain(self, exc: BaseException) -> str:
        """What to record for an attempt that raised ``exc``: the time-out when it was the deadline."""
        if self.expired and not isinstance(exc, DeadlineExceeded):
            return f"no complete answer within {self.timeout_s:g} s (the connection was cut)"
        return f"{type(exc).__name__}: {exc}"
