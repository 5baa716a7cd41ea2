"""Serial line source: reads an ASCII sensor's lines and hands each one on as a RawMessage.

One thread per port reads with pyserial; partial lines are buffered until their line ending; a
lost or failing port is reopened with exponential backoff (capped at ``reconnect_max_s``). Lines are
not parsed here: the pipeline's line decoder applies ``line_pattern`` and quarantines what fails.

The reader thread never waits for the store: each line goes into a bounded
:class:`collector.handover.Handover`, whose own thread hands lines to the sink and keeps them until
they are durable. While the store is stalled the reader keeps reading the port (a sensor cannot be
asked to send again, and the kernel's buffer would overflow); past ``max_buffered_messages`` (or
``max_buffered_bytes``) lines spill to the source's disk spool (``collector.spool``), or without one
the oldest lines not yet handed over are dropped, counted and logged.

The reader thread owns the port: it opens, reads and closes it; :meth:`SerialLineSource.stop` only
asks it to stop (a read returns within :data:`_READ_TIMEOUT_S`), so a port is never closed under a
read in progress.

A line longer than :data:`MAX_LINE_BYTES` (a device sending garbage without line endings, a wrong baud
rate) is cut there and handed on once, counted ``overlong_lines`` (the pipeline quarantines it); the
rest of it up to the next line ending is skipped, so memory per port stays bounded whatever arrives.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import serial

from archmon.domain import RawMessage
from collector.handover import Handover
from collector.serial_line_config import LineSourceConfig
from collector.source import MessageSink
from collector.spool import Spool

__all__ = ["MAX_LINE_BYTES", "SerialLineSource"]

log = logging.getLogger(__name__)

_READ_TIMEOUT_S = 0.2  # bounds how long stop() waits for the reader
_RECONNECT_MIN_S = 0.1
MAX_LINE_BYTES = 4096
"""Longest line handed on; a longer one is cut here (counted ``overlong_lines``), the rest of it skipped."""
_LINE_END = re.compile(rb"[\r\n]")


class SerialLineSource:
    """Reads lines from a serial port in a background thread.

    Building it opens nothing; :meth:`start` starts the reader thread, which opens the port.

    Args:
        config: the validated line source.
        sink: gets the lines as RawMessages (payload without its line ending, topic
            ``line/<source id>``), from the hand-over's thread, in order, in chunks of at most
            ``max_chunk``; returns a future resolved once they are durable.
        max_chunk: most lines per sink call.
        spool: where lines go past the memory bound while the store is stalled (None: dropped).
    """

    def __init__(self, config: LineSourceConfig, sink: MessageSink, *, max_chunk: int = 500,
                 spool: Spool | None = None) -> None:
        self.config = config
        self._handover = Handover(f"serial line {config.id}", sink, max_buffered=config.max_buffered_messages,
                                  max_buffered_bytes=config.max_buffered_bytes, max_chunk=max_chunk, spool=spool)
        self._topic = f"line/{config.id}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: serial.SerialBase | None = None
        self._buffer = bytearray()
        self._skipping = False  # inside the rest of an overlong line: skip up to the next line ending
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
            "overlong_lines": 0,
            "partial_dropped": 0,
            "connected": 0,
        }

    def start(self) -> None:
        """Start the reader thread (it opens the port; failures are retried, never raised), and the replay of
        what the spool holds from an earlier run."""
        if self._thread is not None:
            if not self._stop.is_set():
                return
            self._thread.join()  # stopped, still finishing its last read: it closes the port itself
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"serial-line {self.config.id}", daemon=True)
        self._thread.start()
        self._handover.resume()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the reader thread (it closes the port), then wait (at most ``timeout`` s in all) for the lines
        read so far to be durable; what the store did not take by then is spooled or logged as lost."""
        started = time.monotonic()
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(min(timeout, 2.0))  # a read returns within _READ_TIMEOUT_S
            if thread.is_alive():
                log.warning("serial line %s: reader thread did not stop in %.1f s; it closes the port when its read "
                            "returns", self.config.id, timeout)
            else:
                self._thread = None
        self._handover.stop(max(0.0, timeout - (time.monotonic() - started)))

    @property
    def connected(self) -> bool:
        """True while the port is open."""
        with self._lock:
            return bool(self._stats["connected"])

    def stats(self) -> dict[str, int]:
        """Counters: lines, bytes, opens, reconnects, open_failures, read_errors, overlong_lines,
        partial_dropped; from the hand-over delivered, dropped (buffer full), refused (by the store,
        for good), retries, handler_errors (the sink raised), lost_at_stop (never handed to the
        store when stop() stopped waiting), spilled (written to the disk spool); gauges connected (1 while the
        port is open), buffered (lines read, not yet durable, in memory) and spool_rows, spool_bytes,
        spool_oldest_ms, spool_max_bytes, spool_warning (the disk spool, see ``collector.handover``)."""
        handover = self._handover.stats()
        with self._lock:
            out = dict(self._stats)
        out.update(handover.for_source())
        return out

    @property
    def handover(self) -> Handover:
        """The buffer between the reader and the sink (its refused messages, for inspection)."""
        return self._handover

    def _count(self, name: str, delta: int = 1) -> None:
        with self._lock:
            self._stats[name] += delta

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        finally:
            self._close()

    def _read_until_stopped(self) -> None:
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
        self._skipping = False
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
        if self._skipping:
            end = _LINE_END.search(data)
            if end is None:
                return
            data, self._skipping = data[end.start():], False
        self._buffer.extend(data)
        *lines, rest = _LINE_END.split(bytes(self._buffer))
        self._buffer[:] = rest
        if len(rest) > MAX_LINE_BYTES:  # no line ending yet: hand on what fits, skip the rest of it
            lines.append(rest)
            self._buffer.clear()
            self._skipping = True
        for line in lines:
            if len(line) > MAX_LINE_BYTES:
                self._count("overlong_lines")
                line = line[:MAX_LINE_BYTES]
            if line:
                self._deliver(line)

    def _deliver(self, line: bytes) -> None:
        self._count("lines")
        self._handover.put(RawMessage(source=self.config.id, topic=self._topic, payload=line,
                                        received_ms=self._handover.stamp()))
