"""How archmon logs: every timestamp with its UTC offset, in a zone the log names on its first line.

``archmon run`` logs in the site's time zone (the zone people read every other time in) and starts with a
line naming it; other commands log in the machine's local zone, still with the offset on every line. Under
systemd (stderr connected to the journal, ``$JOURNAL_STREAM``), each line also starts with its syslog
priority (``<3>`` for errors ...), so ``journalctl -p warning`` works; journald strips the prefix.

Log lines carry text that devices and the network control (MQTT topics, payload excerpts, reasons quoting
them), so the formatter escapes every control and format character of the message and the exception text
(``\x1b``, ``\u202e``; :func:`printable`): a topic cannot colour the terminal, reorder a line or clear the
screen. A line break in a message is kept but the lines after it are indented, so no text inside a
message can start a line that looks like a record of its own.
"""

from __future__ import annotations

import logging
import os
import sys
import unicodedata
from datetime import datetime, tzinfo
from typing import TextIO

__all__ = ["LOG_FORMAT", "ZoneFormatter", "printable", "setup_logging", "use_zone", "zone_label"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Third-party loggers that are noisy at INFO (or, for pymodbus, log every timeout at ERROR with a frame
# dump: the Modbus source reports timeouts once itself).
_QUIET = {"amqtt": logging.WARNING, "transitions": logging.WARNING, "apscheduler": logging.WARNING,
          "pymodbus": logging.CRITICAL}

_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

_UNSAFE = ("Cc", "Cf", "Cs", "Zl", "Zp")  # control, format (bidi overrides), surrogates, line/paragraph separators


def _escaped(text: str, keep: str, backslash: str) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append(backslash)
        elif char not in keep and unicodedata.category(char) in _UNSAFE:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def printable(text: str) -> str:
    """``text`` with every control or format character escaped (``\\x1b``, ``\\u202e``); backslashes doubled."""
    return _escaped(text, "", "\\\\")


def _log_text(text: str) -> str:
    """Log text made safe: controls escaped, line breaks and tabs kept, backslashes as they are."""
    return text if text.isprintable() else _escaped(text, "\n\t", "\\")


def _indented(text: str) -> str:
    """Safe log text whose second and later lines are indented: only a record starts a line."""
    return _log_text(text).replace("\n", "\n  ")


def zone_label(tz: tzinfo | None, now: datetime | None = None) -> str:
    """A zone as people read it: ``Asia/Shanghai (UTC+08:00)``; the local zone when ``tz`` is None."""
    moment = (now or datetime.now()).astimezone(tz)
    offset = moment.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    name = str(getattr(moment.tzinfo, "key", "") or moment.tzname() or "local time")
    return f"{name} ({offset})"


class ZoneFormatter(logging.Formatter):
    """A formatter whose ``asctime`` is ISO-8601 with milliseconds and offset, in ``tz`` (None: local).

    Args:
        fmt: the ``logging`` format string.
        tz: zone of the timestamps.
        syslog_prefix: start each line with its syslog priority (``<N>``) for the systemd journal.
    """

    def __init__(self, fmt: str = LOG_FORMAT, tz: tzinfo | None = None, *, syslog_prefix: bool = False) -> None:
        super().__init__(fmt)
        self.tz = tz
        self.syslog_prefix = syslog_prefix

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone(self.tz)
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, controls escaped (see the module docstring), with the syslog prefix if asked."""
        record.message = _indented(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n  " + _indented(record.exc_text)
        if record.stack_info:
            text += "\n  " + _indented(self.formatStack(record.stack_info))
        if not self.syslog_prefix:
            return text
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def _to_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the systemd journal stream systemd set up for this service."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing to whatever ``sys.stderr`` is when a record comes (not the one at set-up):
    a process that swaps stderr (pytest's capture, a daemon redirecting it) never logs to a closed stream."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


_handler: logging.Handler | None = None


def setup_logging(level: str = "INFO", *, stream: TextIO | None = None) -> logging.Handler:
    """Log to ``stream`` (stderr) at ``level``, local time with offset, until :func:`use_zone` is called.

    Returns:
        The installed handler (replaces one installed by an earlier call).
    """
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(ZoneFormatter(syslog_prefix=_to_journal(stream or sys.stderr)))
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    _handler = handler
    return handler


def use_zone(tz: tzinfo, *, why: str = "the site's time zone") -> None:
    """Switch log timestamps to ``tz`` and log a line naming the zone (the first line of ``archmon run``)."""
    handler = _handler
    if handler is not None and isinstance(handler.formatter, ZoneFormatter):
        handler.formatter.tz = tz
    logging.getLogger("archmon").info("log times are in %s, %s", zone_label(tz), why)
