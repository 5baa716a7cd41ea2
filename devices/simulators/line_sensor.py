"""An ASCII line sensor: prints one reading per line (``T=21.5,H=52.1\\r\\n``) on a serial port."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import TracebackType

import serial

__all__ = ["DEFAULT_TEMPLATE", "LineSensorSimulator"]

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "T={temperature:.1f},H={humidity:.1f}"
"""The line format of the common cheap loggers: temperature °C and humidity %RH, one decimal."""

GARBAGE_LINES = (b"\x00\xff\xfeT=??", b"ERR 17", b"T=,H=", b"#########")


class LineSensorSimulator:
    """Writes a formatted line every ``interval_s`` to a serial port, from a value callable.

    Args:
        port: serial device path (one end of a pty pair).
        values: called before each line; returns the fields the template formats.
        interval_s: seconds between lines; ``None`` writes only on demand (:meth:`emit`).
        template: ``str.format`` template of a line, without the line ending.
        baudrate: line speed.
        line_ending: appended to every line.
    """

    def __init__(
        self,
        port: str,
        values: Callable[[], Mapping[str, float]],
        *,
        interval_s: float | None = 1.0,
        template: str = DEFAULT_TEMPLATE,
        baudrate: int = 9600,
        line_ending: bytes = b"\r\n",
    ) -> None:
        self.port = port
        self.values = values
        self.interval_s = interval_s
        self.template = template
        self.baudrate = baudrate
        self.line_ending = line_ending
        self.lines_written = 0
        self._serial: serial.Serial | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Open the port without starting the periodic writer (for on-demand writes).

        Raises:
            serial.SerialException: if the port cannot be opened.
        """
        with self._lock:
            if self._serial is None:
                self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.1)

    def start(self) -> None:
        """Open the port and start writing a line every ``interval_s`` in a background thread."""
        self.open()
        if self.interval_s is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"line-sim {self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.interval_s is not None
        while not self._stop.is_set():
            try:
                self.emit()
            except (OSError, serial.SerialException) as exc:
                log.warning("line simulator: writing to %s failed: %s", self.port, exc)
                return
            self._stop.wait(self.interval_s)

    def format_line(self) -> str:
        """The next line's text (without line ending), from the value callable."""
        return self.template.format(**self.values())

    def emit(self) -> str:
        """Write one formatted line now and return its text."""
        text = self.format_line()
        self.write_raw(text.encode("ascii") + self.line_ending)
        return text

    def write_line(self, text: str | bytes) -> None:
        """Write an arbitrary line (the line ending is added)."""
        data = text.encode("ascii") if isinstance(text, str) else text
        self.write_raw(data + self.line_ending)

    def write_garbage(self, count: int = 1) -> list[bytes]:
        """Write ``count`` malformed lines (binary noise, error text, empty fields); returns them."""
        lines = [GARBAGE_LINES[i % len(GARBAGE_LINES)] for i in range(count)]
        for line in lines:
            self.write_raw(line + self.line_ending)
        return lines

    def write_raw(self, data: bytes) -> None:
        """Write bytes as they are (a partial line, no line ending added).

        Raises:
            RuntimeError: if the port is not open.
        """
        with self._lock:
            if self._serial is None:
                raise RuntimeError(f"line simulator on {self.port} is not open")
            self._serial.write(data)
            self._serial.flush()
            if data.endswith(self.line_ending):
                self.lines_written += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Stop writing and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            if self._serial is not None:
                try:
                    self._serial.close()
                except (OSError, serial.SerialException):
                    log.debug("line simulator: closing %s failed", self.port, exc_info=True)
                self._serial = None

    def __enter__(self) -> LineSensorSimulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
