"""What ``archmon run`` does with signals: SIGHUP reloads, SIGTERM and SIGINT stop, and a stop always wins.

The main thread only waits for a stop; reloads run on a thread of their own. It waits on the signal wake-up
socket (``signal.set_wakeup_fd``), not on a lock: the kernel may hand a signal to any thread, and Python runs
the handler only once the main thread runs again, which a thread blocked in a lock never does. So a SIGTERM
is seen at once, whatever a reload is doing (reading a file, waiting for a broker's answer): systemd hears
``STOPPING`` from the signal handler itself, a reload in progress applies nothing more, a reload asked for
and not begun is dropped, and the stop starts without waiting for either. SIGHUPs in a row while a reload
runs (or waits) collapse into one more reload, which reads the file as it is by then (the kernel merges
signals of one kind that arrive before the first is handled, too).
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import socket
import threading
from typing import TYPE_CHECKING

from archmon import systemd

if TYPE_CHECKING:
    from archmon.app.service import Service
    from archmon.shutdown import StopReport

__all__ = ["RunControl"]

log = logging.getLogger("archmon.app")


class RunControl:
    """Signals of ``archmon run`` turned into reloads and one stop of ``service``.

    Args:
        service: the started service.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._reloading = False
        self.reloads = 0
        """Reloads done (applied or refused; not those a stop cut short)."""
        self._thread = threading.Thread(target=self._reloads, name="archmon-reload", daemon=True)

    def install(self) -> None:
        """Handle SIGINT, SIGTERM (stop) and SIGHUP (reload) from now on (main thread only)."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            self.request_reload(name)
        else:
            self.request_stop(name)

    def request_reload(self, why: str = "reload") -> None:
        """Reload the file soon (once for a run of requests); nothing once a stop was asked for."""
        if self._stop.is_set():
            log.info("%s: not reloading, archmon is stopping", why)
        elif self._reload.is_set():
            log.info("%s: a reload is already waiting; it reads the file as it is then", why)
        else:
            log.info("%s: reloading the configuration%s", why, " after the reload in progress"
                     if self._reloading else "")
            self._reload.set()

    def request_stop(self, why: str = "stop") -> None:
        """Stop: reloads end, systemd is told now, the main thread runs the stop."""
        if self._stop.is_set():
            log.info("%s: already stopping (within %g s)", why, self.service.config.service.stop_timeout_s)
            return
        log.info("%s: stopping", why)
        self._stop.set()
        self.service.request_stop()
        self._reload.set()  # the reload thread wakes, sees the stop and ends

    def run(self) -> StopReport:
        """Serve reloads until a stop is asked for, then stop the service and return its report."""
        self._thread.start()
        try:
            self._wait_for_stop()
        finally:
            report = self.service.stop()
        return report

    def _wait_for_stop(self) -> None:
        """Sleep until a stop is asked for, woken by every signal whichever thread the kernel gave it to."""
        if threading.current_thread() is not threading.main_thread():  # (tests: asked for by a call)
            self._stop.wait()
            return
        wake, woken = socket.socketpair()
        wake.setblocking(False)
        woken.setblocking(False)
        previous = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
        try:
            while not self._stop.is_set():
                select.select([woken], [], [], 5.0)  # back in Python: pending signal handlers run here
                with contextlib.suppress(BlockingIOError):
                    woken.recv(4096)
        finally:
            signal.set_wakeup_fd(previous)
            wake.close()
            woken.close()

    def _reloads(self) -> None:
        while True:
            self._reload.wait()
            if self._stop.is_set():
                return
            self._reload.clear()
            self._reloading = True
            try:
                systemd.notify_reloading()
                outcome = self.service.reload()
            except Exception:  # Service.reload never raises for a file; a bug must not end the reloads
                log.exception("reload failed")
                continue
            finally:
                self._reloading = False
            if outcome.skipped:
                continue
            self.reloads += 1
            if not self._stop.is_set():
                systemd.notify_ready("collecting; last reload " + ("applied" if outcome.applied
                                                                   else "REFUSED (see log)"))
