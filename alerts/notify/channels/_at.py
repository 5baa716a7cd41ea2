"""An AT command session on a serial port (3GPP TS 27.007 / 27.005 result codes), for the GSM modem channel.

One command at a time: :meth:`AtPort.command` writes ``AT...<CR>``, collects the information lines until a
final result code (``OK``, ``ERROR``, ``+CME ERROR: <n>``, ``+CMS ERROR: <n>``) and returns them; the echo
of the command (a modem echoes until ``ATE0``) is skipped. Unsolicited result codes that arrive in between
(``+CMTI``, ``RING``...) are kept in :attr:`AtPort.unsolicited` for the caller. A port that fails (unplugged
USB modem: EIO, or a vanished device node) raises :class:`ModemGone`; the caller closes it and reopens later.
The port is opened exclusively (``TIOCEXCL``/flock), so a second archmon cannot interleave its commands.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import serial

__all__ = ["AnswerLost", "AtError", "AtPort", "ModemGone"]

log = logging.getLogger(__name__)

_FINAL_OK = ("OK",)
_FINAL_ERR = ("ERROR", "NO CARRIER", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS")
_UNSOLICITED = ("+CMTI:", "+CMT:", "+CDSI:", "+CDS:", "RING", "+CREG:", "+CEREG:", "+CBM:", "^", "+CPIN: NOT")


class ModemGone(Exception):
    """The port cannot be used (unplugged, no such device, or the modem stopped answering)."""


class AnswerLost(ModemGone):
    """A PDU was written whole, but no final result came in time: the network may have taken the message."""


class AtError(Exception):
    """A command ended with an error result code.

    Attributes:
        kind: ``CME``, ``CMS`` or ``ERROR``.
        code: the numeric code (None for plain ``ERROR``).
        line: the result line as the modem sent it.
    """

    def __init__(self, kind: str, code: int | None, line: str) -> None:
        self.kind = kind
        self.code = code
        self.line = line
        super().__init__(line)


class AtPort:
    """A serial port speaking AT commands.

    Args:
        port: device path (``/dev/ttyUSB2``) or a pyserial URL.
        baud: line speed.
    """

    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port = port
        self.baud = baud
        self.unsolicited: deque[str] = deque(maxlen=200)
        self._serial: serial.Serial | None = None
        self._buffer = b""

    @property
    def is_open(self) -> bool:
        """Whether the port is open."""
        return self._serial is not None

    def open(self) -> None:
        """Open the port (exclusively).

        Raises:
            ModemGone: the device does not exist, is held by another program, or cannot be opened.
        """
        if self._serial is not None:
            return
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.05, exclusive=True)
        except (OSError, serial.SerialException, ValueError) as exc:
            raise ModemGone(f"cannot open {self.port}: {exc}") from None
        self._buffer = b""

    def close(self) -> None:
        """Close the port (idempotent)."""
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException):
                log.debug("closing %s failed", self.port, exc_info=True)

    def _read(self) -> bytes:
        if self._serial is None:
            raise ModemGone(f"{self.port} is not open")
        try:
            return self._serial.read(self._serial.in_waiting or 1)
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise ModemGone(f"{self.port}: {exc}") from None

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise ModemGone(f"{self.port} is not open")
        try:
            self._serial.write(data)
            self._serial.flush()
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise ModemGone(f"{self.port}: {exc}") from None

    def _next_line(self, deadline: float) -> str:
        while True:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                end = self._buffer.find(b"\r")  # an echo ends with CR alone
                if end < 0 or end == len(self._buffer) - 1:
                    end = -1
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1:].lstrip(b"\n")
                text = line.decode("ascii", "replace").strip()
                if text:
                    return text
                continue
            if time.monotonic() > deadline:
                raise ModemGone(f"{self.port}: no answer (modem not responding)")
            self._buffer += self._read()

    def reset(self, settle_s: float = 0.3) -> None:
        """Leave whatever state a previous session left the modem in (a ``> `` prompt waiting for a PDU after a
        crash): ESC cancels a pending message, then what the modem answers is read and dropped."""
        self._write(b"\x1b\r")
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            self._buffer += self._read()
        self._buffer = b""
        self.unsolicited.clear()

    def drain(self) -> None:
        """Read what the modem sent on its own (unsolicited codes) without sending anything."""
        while self._serial is not None and self._serial.in_waiting:
            self._buffer += self._read()
        while b"\r\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\r\n")
            text = line.decode("ascii", "replace").strip()
            if text:
                self.unsolicited.append(text)

    def command(self, cmd: str, *, timeout_s: float = 5.0) -> list[str]:
        """Run one command; returns its information lines.

        Raises:
            AtError: ``ERROR``, ``+CME ERROR`` or ``+CMS ERROR``.
            ModemGone: the port failed or the modem did not answer within ``timeout_s``.
        """
        self.drain()
        self._write(cmd.encode("ascii") + b"\r")
        return self._collect(cmd, time.monotonic() + timeout_s)

    def _collect(self, cmd: str, deadline: float) -> list[str]:
        lines: list[str] = []
        while True:
            line = self._next_line(deadline)
            if line == cmd or (line.upper().startswith("AT") and line.upper() == cmd.upper()):
                continue  # echo
            if line in _FINAL_OK:
                return lines
            if line in _FINAL_ERR:
                raise AtError("ERROR", None, line)
            for kind in ("CME", "CMS"):
                if line.startswith(f"+{kind} ERROR:"):
                    code_text = line.partition(":")[2].strip()
                    raise AtError(kind, int(code_text) if code_text.isdigit() else None, line)
            if line.startswith(_UNSOLICITED) and not _answers(cmd, line):
                self.unsolicited.append(line)
                continue
            lines.append(line)

    def send_pdu(self, length: int, pdu_hex: str, *, timeout_s: float = 60.0) -> list[str]:
        """``AT+CMGS=<length>``, wait for the ``> `` prompt, write the PDU and Ctrl-Z; returns the answer lines.

        Raises:
            AtError: the modem refused (``+CMS ERROR: <n>``).
            AnswerLost: the PDU was written but no answer came in time (it may have been sent).
            ModemGone: the port failed, or no prompt in time.
        """
        self.drain()
        cmd = f"AT+CMGS={length}"
        self._write(cmd.encode("ascii") + b"\r")
        deadline = time.monotonic() + min(timeout_s, 10.0)
        while b">" not in self._buffer:
            if b"ERROR" in self._buffer and b"\r\n" in self._buffer.split(b"ERROR", 1)[1]:
                return self._collect(cmd, deadline)  # refused before the prompt: raises AtError
            if time.monotonic() > deadline:
                self._write(b"\x1b")  # leave the PDU prompt if it comes late
                raise ModemGone(f"{self.port}: no '> ' prompt after {cmd}")
            self._buffer += self._read()
        before, _, self._buffer = self._buffer.partition(b">")
        for line in before.decode("ascii", "replace").split("\r\n"):
            text = line.strip()
            if text and text != cmd and text.startswith(_UNSOLICITED):
                self.unsolicited.append(text)
        self._write(pdu_hex.encode("ascii") + b"\x1a")
        try:
            return self._collect(pdu_hex, time.monotonic() + timeout_s)
        except ModemGone as exc:
            raise AnswerLost(f"{exc} after the message was handed over (it may have been sent)") from None


def _answers(cmd: str, line: str) -> bool:
    """Whether an unsolicited-looking line is in fact the answer to ``cmd`` (``AT+CREG?`` → ``+CREG: 0,1``)."""
    prefix = line.partition(":")[0]
    return cmd.upper().startswith("AT" + prefix.upper())
