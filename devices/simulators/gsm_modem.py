"""A GSM/4G modem on a serial port: the AT subset archmon's SMS channel uses, in PDU mode.

Faithful to 3GPP TS 27.007 (general and mobile-equipment commands) and TS 27.005 (SMS) in what it
answers, byte for byte as modems do with ``ATV1``:

- every response is ``<CR><LF>text<CR><LF>``; a command ends with ``OK``, ``ERROR``, ``+CME ERROR: <n>``
  (27.007 §9.2: 10 SIM not inserted, 30 no network service, 100 unknown) or ``+CMS ERROR: <n>`` (27.005
  §3.2.5: 310 SIM not inserted, 321 invalid memory index, 330 SMSC address unknown, 331 no network
  service, 500 unknown error); with ``AT+CMEE=0`` (the default) both collapse to ``ERROR``;
- echo is on until ``ATE0`` (a fresh modem echoes what it is sent);
- ``AT+CMGS=<length>`` answers ``<CR><LF>> `` and takes hex PDU up to Ctrl-Z (0x1A; ESC cancels), then
  ``+CMGS: <mr>`` and ``OK``; a length that is not the TPDU's octet count is ``+CMS ERROR: 304``;
- ``AT+CPIN?`` (``+CPIN: READY``), ``AT+CREG?``/``AT+CEREG?`` (``+CREG: <n>,<stat>``: 1 home, 2 searching,
  3 denied, 5 roaming), ``AT+CSQ`` (``+CSQ: <rssi>,<ber>``, 99 unknown), ``AT+CMGF``, ``AT+CNMI``,
  ``AT+CPMS``, ``AT+CMGR=<i>``, ``AT+CMGL=<stat>`` and ``AT+CMGD=<i>[,<flag>]`` on the SIM store ("SM"),
  messages listed as ``+CMGL: <index>,<stat>,,<length>`` then the PDU; ``+CMTI: "SM",<index>`` is sent
  unsolicited for a new message when ``AT+CNMI=<mode>,1`` asked for it.

It decodes and records every PDU it is asked to send (:attr:`GsmModemSimulator.sent`), delivers incoming
messages (:meth:`deliver_sms`, from a number or an alphanumeric sender name), and fails on demand
(:meth:`set_failure`: no SIM, no network, a ``+CMS ERROR`` for some sends — optionally only after a number
of good ones, to fail a long message part-way —, an answer lost after the PDU was taken, or silence).

This module holds the line (reading commands and PDUs, writing answers) and the test controls; the answers
to each command are in :mod:`devices.simulators.gsm_modem_at`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import NamedTuple

import serial

from archmon.sms_pdu import Concat, encode_deliver, split_text
from devices.simulators.gsm_modem_at import AtCommandSet, Failure, ModemState, SentSms, StoredSms

__all__ = ["Failure", "GsmModemSimulator", "SentSms", "SmsText", "StoredSms"]

log = logging.getLogger(__name__)

CTRL_Z, ESC = b"\x1a", b"\x1b"


class SmsText(NamedTuple):
    """One whole message sent (its parts joined), as :meth:`GsmModemSimulator.texts_sent` lists them."""

    number: str
    text: str


class GsmModemSimulator(AtCommandSet):
    """Answers AT commands on one end of a serial line (e.g. a pty pair) like a GSM modem.

    Args:
        port: serial device path the simulator opens (the modem's side).
        capacity: SIM store slots (a full store makes new messages fail to arrive, as on a real SIM).
        smsc: the service centre number put into delivered PDUs.
        clock: the time stamped on delivered messages (default: now, UTC+8).
    """

    def __init__(self, port: str, *, capacity: int = 20, smsc: str = "+8613800100500",
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.port = port
        self.capacity = capacity
        self.smsc = smsc
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(microsecond=0))
        self.sent: list[SentSms] = []
        self.commands: list[str] = []
        self._state = ModemState()
        self._serial: serial.Serial | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mr = 0
        self._ref = 0
        self.sent_event = threading.Condition(self._lock)

    # -- control --------------------------------------------------------------------------------
    def start(self) -> GsmModemSimulator:
        """Open the port and answer commands in a background thread."""
        self._serial = serial.serial_for_url(self.port, baudrate=115200, timeout=0.05)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"gsm-modem-sim {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._serial is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                self._serial.close()
            self._serial = None

    def __enter__(self) -> GsmModemSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_failure(self, failure: Failure, *, code: int = 500, count: int = 1_000_000, after: int = 0) -> None:
        """Fail from now on: ``no_sim``, ``no_network``, ``cms_error`` (the next ``count`` sends answer
        ``+CMS ERROR: code``), ``lost_answer`` (the next ``count`` PDUs are taken — recorded as sent — but
        never answered, as when the modem's answer is lost), ``silent`` (read everything, answer nothing) or
        ``none`` (healthy again). With ``after``, ``cms_error`` and ``lost_answer`` start only after that
        many more sends went through (part 2 of a three-part message fails with ``after=1``)."""
        with self._lock:
            self._state.failure = failure
            self._state.cms_code = code
            self._state.cms_left = count if failure in ("cms_error", "lost_answer") else 0
            self._state.good_before_failure = after
            self._state.registration = 2 if failure == "no_network" else 1

    def set_signal(self, rssi: int) -> None:
        """The ``AT+CSQ`` rssi (0..31, 99 unknown)."""
        with self._lock:
            self._state.rssi = rssi

    def deliver_sms(self, number: str, text: str, *, alphanumeric: bool = False,
                    parts_only: tuple[int, ...] | None = None, ref: int | None = None) -> list[int]:
        """A message arrives from ``number`` (concatenated parts if it is long): stored on the SIM, announced
        with ``+CMTI`` if the host asked for it. Returns the store indexes used.

        Args:
            number: the sender's number, or a sender name.
            text: the message.
            alphanumeric: the sender is a name even if it is made of digits (a spoofable sender id).
            parts_only: deliver only these part numbers (1-based) of a long message; the others are late.
            ref: the concatenation reference (default: the next one); give the same to deliver the late parts.
        """
        parts = split_text(text).parts
        with self._lock:
            self._ref = (self._ref + 1) % 256 if ref is None else ref
            indexes = []
            for seq, part in enumerate(parts, start=1):
                if parts_only is not None and seq not in parts_only:
                    continue
                concat = Concat(self._ref, len(parts), seq) if len(parts) > 1 else None
                pdu = encode_deliver(number, part, timestamp=self.clock(), smsc=self.smsc, concat=concat,
                                     alphanumeric=alphanumeric)
                free = next((i for i in range(self.capacity) if i not in self._state.store), None)
                if free is None:
                    log.warning("gsm modem simulator: SIM store full, message from %s lost", number)
                    continue
                self._state.store[free] = StoredSms(free, pdu)
                indexes.append(free)
                if self._state.cnmi_mt == 1 and self._state.failure != "silent":
                    self._write(f'\r\n+CMTI: "SM",{free}\r\n')
            return indexes

    def stored(self) -> dict[int, StoredSms]:
        """The SIM store now (index → message)."""
        with self._lock:
            return dict(self._state.store)

    def texts_sent(self) -> list[SmsText]:
        """Every whole message sent, parts joined in order (a part sent twice counts once, as a phone joins
        them; a message whose parts did not all arrive is not listed)."""
        with self._lock:
            out: list[SmsText] = []
            open_parts: dict[tuple[str, int, int], dict[int, str]] = {}
            for sms in self.sent:
                d = sms.decoded
                if d.concat is None:
                    out.append(SmsText(d.number, d.text))
                    continue
                key = (d.number, d.concat.ref, d.concat.total)
                parts = open_parts.setdefault(key, {})
                parts[d.concat.seq] = d.text
                if len(parts) == d.concat.total:
                    out.append(SmsText(d.number, "".join(parts[i] for i in sorted(parts))))
                    del open_parts[key]
            return out

    def wait_sent(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until at least ``count`` PDUs were sent."""
        with self.sent_event:
            return self.sent_event.wait_for(lambda: len(self.sent) >= count, timeout)

    # -- the line ---------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        port = self._serial
        if port is None:
            return
        try:
            port.write(text.encode("ascii"))
            port.flush()
        except (OSError, serial.SerialException) as exc:
            log.debug("gsm modem simulator: write failed: %s", exc)

    def _run(self) -> None:
        buffer = b""
        pdu_length: int | None = None
        while not self._stop.is_set():
            port = self._serial
            if port is None:
                return
            try:
                chunk = port.read(512)
            except (OSError, serial.SerialException):
                if self._stop.wait(0.1):
                    return
                continue
            if not chunk:
                continue
            buffer += chunk
            while True:
                if pdu_length is not None:
                    end = min((i for i in (buffer.find(CTRL_Z), buffer.find(ESC)) if i >= 0), default=-1)
                    if end < 0:
                        break
                    body, terminator, buffer = buffer[:end], buffer[end:end + 1], buffer[end + 1:]
                    with self._lock:
                        if self._state.echo:
                            self._write(body.decode("ascii", "replace"))
                        self._finish_cmgs(pdu_length, body, cancelled=terminator == ESC)
                    pdu_length = None
                    continue
                end = buffer.find(b"\r")
                if end < 0:
                    break
                line, buffer = buffer[:end], buffer[end + 1:].lstrip(b"\n")
                text = line.decode("ascii", "replace").strip()
                if not text:
                    continue
                with self._lock:
                    self.commands.append(text)
                    if self._state.failure == "silent":
                        continue
                    if self._state.echo:
                        self._write(text + "\r")
                    pdu_length = self._command(text)
