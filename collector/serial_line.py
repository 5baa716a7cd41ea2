"""Serial line source: reads an ASCII sensor's lines and hands each one on as a RawMessage.

One thread per port reads with pyserial; partial lines are buffered until their line ending; a
lost or failing port is reopened with exponential backoff (capped at ``reconnect_max_s``). Lines are
not parsed here: the pipeline's line decoder applies ``line_pattern`` and quarantines what fails.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import serial

from archmon.config import SerialSourceConfig
from archmon.domain import RawMessage
from archmon.timeutil import now_ms

__all__ = ["SerialLineSource"]

log = logging.getLogger(__name__)

_READ_TIMEOUT_S = 0.2  # bounds how long stop() waits for the reader
_RECONNECT_MIN_S = 0.1
_MAX_LINE = 4096  # a "line" longer than this without a line ending is handed on as it is
_LINE_END = re.compile(rb"[\r\n]")


class SerialLineSource:
    """Reads lines from a serial port in a background thread.

    Args:
        config: the validated serial source (``protocol = "line"``).
        handler: called from the reader thread with one RawMessage per non-empty line, payload
            without its line ending; topic ``line/<source id>``. Exceptions it raises are logged
            and counted, and reading goes on.
    """

    def __init__(self, config: SerialSourceConfig, handler: Callable[[RawMessage], Any]) -> None:
        self.config = config
        self._handler = handler
        self._topic = f"line/{config.id}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: serial.SerialBase | None = None
        self._buffer = bytearray()
        self._backoff_s = _RECONNECT_MIN_S
        self._down_logged = False
        self._lock = threading.Lock()
        self._stats: dict[str, int] = {
            "lines": 0,
            "bytes": 0,
            "opens": 0,
            "reconnects": 0,
            "open_failures": 0,
            "read_errors": 0,
            "handler_errors": 0,
            "overlong_lines": 0,
            "partial_dropped": 0,
            "connected": 0,
        }

    def start(self) -> None:
        """Start the reader thread (it opens the port; failures are retried, never raised)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"serial-line {self.config.id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the reader thread and close the port; returns within about ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("serial line %s: reader thread did not stop in %.1f s", self.config.id, timeout)
            self._thread = None
        self._close()

    def stats(self) -> dict[str, int]:
        """Counters: lines, bytes, opens, reconnects, open_failures, read_errors, handler_errors,
        overlong_lines, partial_dropped, and connected (1 while the port is open)."""
        with self._lock:
            return dict(self._stats)

    def _count(self, name: str, delta: int = 1) -> None:
        with self._lock:
            self._stats[name] += delta

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._serial is None and not self._open():
                self._stop.wait(self._backoff_s)
                self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_max_s)
                continue
            try:
                assert self._serial is not None
                data = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._lost(exc)
                continue
            if data:
                self._feed(data)

    def _open(self) -> bool:
        cfg = self.config
        try:
            port = serial.serial_for_url(
                cfg.device,
                baudrate=cfg.baudrate,
                bytesize=cfg.bytesize,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                timeout=_READ_TIMEOUT_S,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._count("open_failures")
            if not self._down_logged:
                log.warning("serial line %s: cannot open %s: %s; retrying", cfg.id, cfg.device, exc)
                self._down_logged = True
            return False
        with self._lock:
            reopened = self._stats["opens"] > 0
            self._stats["opens"] += 1
            self._stats["reconnects"] += int(reopened)
            self._stats["connected"] = 1
        self._serial = port
        self._backoff_s = _RECONNECT_MIN_S
        if reopened or self._down_logged:
            log.info("serial line %s: %s open again", cfg.id, cfg.device)
        else:
            log.debug("serial line %s: %s open", cfg.id, cfg.device)
        self._down_logged = False
        return True

    def _lost(self, exc: BaseException) -> None:
        self._count("read_errors")
        if not self._down_logged:
            log.warning("serial line %s: %s lost: %s; reconnecting", self.config.id, self.config.device, exc)
            self._down_logged = True
        if self._buffer:
            self._count("partial_dropped")
            self._buffer.clear()
        self._close()

    def _close(self) -> None:
        port, self._serial = self._serial, None
        with self._lock:
            self._stats["connected"] = 0
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("serial line %s: closing %s failed", self.config.id, self.config.device, exc_info=True)

    def _feed(self, data: bytes) -> None:
        self._count("bytes", len(data))
        self._buffer.extend(data)
        *lines, rest = _LINE_END.split(bytes(self._buffer))
        self._buffer[:] = rest
        if len(self._buffer) > _MAX_LINE:
            self._count("overlong_lines")
            lines.append(bytes(self._buffer))
            self._buffer.clear()
        for line in lines:
            if line:
                self._deliver(line)

    def _deliver(self, line: bytes) -> None:
        self._count("lines")
        message = RawMessage(source=self.config.id, topic=self._topic, payload=line, received_ms=now_ms())
        try:
            self._handler(message)
        except Exception:
            self._count("handler_errors")
            log.exception("serial line %s: handler failed on %r", self.config.id, line[:80])
