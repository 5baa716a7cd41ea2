"""SMS through a GSM/4G modem on a serial port: PDU mode, GSM 7-bit or UCS2, concatenated parts, replies.

The channel that must work without internet. On (re)open it runs ``ATE0``, ``AT+CMEE=1`` (numeric
errors), ``AT+CMGF=0`` (PDU mode), ``AT+CPIN?`` (entering the SIM PIN from the environment if asked),
``AT+CNMI=2,1,0,0,0`` (announce new messages with ``+CMTI``). Every ``check_interval_s`` it reads
``AT+CPIN?``, ``AT+CREG?``/``AT+CEREG?`` and ``AT+CSQ`` (shown by ``archmon status``). Each part is one
``AT+CMGS``; a ``+CMS ERROR`` fails the message (retried by the outbox with backoff), except errors that
no retry can fix (an invalid number) which reject it. A port that fails is closed and reopened on the
next attempt, so an unplugged modem comes back by itself.

A long message that fails part-way is not sent again whole: the attempt's :attr:`SendResult.resume` keeps
its concatenation reference and how many parts went out, and the retry sends the remaining parts under the
same reference, so the phone joins them into one message. A part whose answer was lost after the PDU was
handed over is sent again under the same reference and number (a phone keeps one copy of a part); a
single-part message in that case is retried marked as a possible duplicate.

Incoming messages (replies that acknowledge alerts) are read on ``+CMTI`` and by listing
``AT+CMGL=4`` every ``inbox_poll_s`` (a URC can be lost), decoded, and returned by :meth:`poll` with the
sender's type of number. A whole message is deleted from the SIM (``AT+CMGD``) once read, so a full SIM never
blocks new replies; the parts of a long reply stay on the SIM until the last part arrives (so a restart
loses none), or until ``part_wait_s`` passes, when the incomplete reply is logged and deleted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import Field

from alerts.notify.channels._at import AnswerLost, AtError, AtPort, ModemGone
from alerts.notify.channels.base import (
    Channel,
    ChannelOptions,
    IncomingSms,
    OutgoingMessage,
    Recipient,
    SecretMissing,
    SendResult,
    read_secret,
)
from archmon.sms_pdu import DeliverPdu, decode_deliver, encode_submit, validity_octet

__all__ = ["GsmModemChannel", "GsmModemOptions"]

log = logging.getLogger(__name__)

REGISTRATION = {0: "not registered", 1: "registered (home)", 2: "searching", 3: "registration denied",
                4: "unknown", 5: "registered (roaming)"}
# +CMS ERROR codes no retry can fix for this message (27.005 §3.2.5): unassigned number, barred, bad PDU...
PERMANENT_CMS = frozenset({1, 8, 10, 21, 27, 28, 29, 30, 96, 97, 304})
MEANINGS = {("CME", 10): "SIM not inserted", ("CME", 11): "SIM PIN required", ("CME", 13): "SIM failure",
            ("CME", 30): "no network service", ("CMS", 310): "SIM not inserted", ("CMS", 330): "SMSC address unknown",
            ("CMS", 331): "no network service", ("CMS", 332): "network timeout", ("CMS", 304): "invalid PDU parameter",
            ("CMS", 500): "unknown error", ("CMS", 38): "network out of order", ("CMS", 1): "unassigned number"}


def _explain(exc: AtError) -> str:
    meaning = MEANINGS.get((exc.kind, exc.code or -1))
    return f"{exc.line} ({meaning})" if meaning else exc.line


class GsmModemOptions(ChannelOptions):
    """Options of ``type = "gsm_modem"``.

    Attributes:
        port: serial device of the modem's AT interface (``/dev/ttyUSB2`` on most Quectel/SIMCom sticks).
        baud: line speed.
        pin_env / pin_file: the SIM PIN, when the SIM asks for one (never in the config itself).
        validity_h: how long the network keeps trying an undelivered message.
        command_timeout_s: answer time of ordinary commands; send_timeout_s: of ``AT+CMGS``.
        check_interval_s: SIM, registration and signal are read this often.
        inbox_poll_s: received messages are listed this often (besides ``+CMTI``); 0 turns replies off.
        reopen_after_s: wait this long before reopening a port that failed.
        part_wait_s: how long the first parts of a long reply wait on the SIM for the rest.
    """

    port: str
    baud: int = Field(default=115200, gt=0)
    pin_env: str | None = None
    pin_file: Path | None = None
    validity_h: float = Field(default=24.0, gt=0, le=24 * 7 * 63)
    command_timeout_s: float = Field(default=5.0, gt=0)
    send_timeout_s: float = Field(default=60.0, gt=0)
    check_interval_s: float = Field(default=60.0, gt=0)
    inbox_poll_s: float = Field(default=30.0, ge=0)
    reopen_after_s: float = Field(default=5.0, ge=0)
    part_wait_s: float = Field(default=3600.0, gt=0)


class GsmModemChannel(Channel):
    """SMS over a serial GSM modem (see the module docstring)."""

    type: ClassVar[str] = "gsm_modem"
    Options: ClassVar[type[ChannelOptions]] = GsmModemOptions
    address_field = "phone"
    options: GsmModemOptions

    def __init__(self, name: str, options: ChannelOptions, **kwargs: Any) -> None:
        super().__init__(name, options, **kwargs)
        self.at = AtPort(self.options.port, self.options.baud)
        self._ref = int(time.time()) % 256
        self._next_open = 0.0
        self._next_check = 0.0
        self._next_inbox = 0.0
        self._waiting: dict[tuple[str, int, int], float] = {}  # incomplete replies on the SIM: first seen
        self.state: dict[str, Any] = {"port": self.options.port, "sim": "unknown", "registration": "unknown",
                                      "signal": None, "open": False, "error": None}

    def secrets(self) -> list[str]:
        try:
            read_secret(self.options.pin_env, self.options.pin_file, f"notify.channels.{self.name}.pin",
                        self.environ)
        except SecretMissing as exc:
            return [str(exc)]
        return []

    # -- link -------------------------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if self.at.is_open:
            return
        now = time.monotonic()
        if now < self._next_open:
            raise ModemGone(self.state["error"] or f"{self.options.port} closed")
        self._next_open = now + self.options.reopen_after_s
        self.at.open()
        try:
            self.at.reset()
            for _ in range(3):  # whatever a previous session left on the line (a half-sent PDU) fails once
                try:
                    self.at.command("AT", timeout_s=self.options.command_timeout_s)
                    break
                except AtError:
                    continue
            for cmd in ("ATE0", "AT+CMEE=1", "AT+CMGF=0"):
                self.at.command(cmd, timeout_s=self.options.command_timeout_s)
            self._check_sim()
            try:
                self.at.command("AT+CNMI=2,1,0,0,0", timeout_s=self.options.command_timeout_s)
            except AtError:
                log.warning("modem %s: AT+CNMI refused; replies are read by polling only", self.name)
        except (AtError, ModemGone) as exc:
            self.at.close()
            self.state.update(open=False, error=_explain(exc) if isinstance(exc, AtError) else str(exc))
            raise
        self.state.update(open=True, error=None)
        self._next_check = 0.0
        log.info("modem %s: %s open", self.name, self.options.port)

    def _check_sim(self) -> None:
        timeout = self.options.command_timeout_s
        try:
            answer = " ".join(self.at.command("AT+CPIN?", timeout_s=timeout))
        except AtError as exc:
            self.state["sim"] = f"not ready ({exc.line})"
            raise
        status = answer.partition(":")[2].strip() or answer
        if status == "SIM PIN":
            pin = read_secret(self.options.pin_env, self.options.pin_file, "SIM PIN", self.environ)
            if pin is None:
                self.state["sim"] = "needs a PIN (set pin_env)"
                raise AtError("CME", 11, "+CME ERROR: 11 (SIM PIN required, none configured)")
            self.at.command(f"AT+CPIN={pin}", timeout_s=timeout)
            status = "READY"
        self.state["sim"] = status

    def _check_link(self) -> None:
        timeout = self.options.command_timeout_s
        self._check_sim()
        stats = []
        for cmd in ("AT+CREG?", "AT+CEREG?"):
            try:
                lines = self.at.command(cmd, timeout_s=timeout)
            except AtError:
                continue  # a 2G-only modem has no +CEREG
            match = re.search(r":\s*\d+,(\d+)", " ".join(lines))
            if match:
                stats.append(int(match.group(1)))
        registered = [s for s in stats if s in (1, 5)]
        stat = registered[0] if registered else (stats[0] if stats else 4)
        self.state["registration"] = REGISTRATION.get(stat, str(stat))
        match = re.search(r"\+CSQ:\s*(\d+)", " ".join(self.at.command("AT+CSQ", timeout_s=timeout)))
        rssi = int(match.group(1)) if match else 99
        self.state["signal"] = None if rssi == 99 else {"rssi": rssi, "dbm": -113 + 2 * rssi}

    def healthy(self) -> bool | None:
        if not self.state["open"]:
            return False if self.state["error"] else None
        return self.state["sim"] == "READY" and self.state["registration"].startswith("registered")

    def details(self) -> dict[str, Any]:
        return dict(self.state)

    # -- sending ----------------------------------------------------------------------------------
    def send(self, message: OutgoingMessage, recipient: Recipient) -> SendResult:
        text = message.short or message.text
        digest = hashlib.sha256(f"{recipient.address}\n{text}".encode()).hexdigest()[:16]
        resume = message.resume or {}
        if resume.get("digest") == digest:  # the same message failed part-way: send the rest under its ref
            ref, done = int(resume["ref"]), int(resume["done"])
        else:
            self._ref = (self._ref + 1) % 256
            ref, done = self._ref, 0
        try:
            pdus = encode_submit(recipient.address, text, ref=ref, validity=validity_octet(self.options.validity_h))
        except ValueError as exc:
            return SendResult("rejected", str(exc), channel_fault=False)
        first, answers = done, []
        try:
            self._ensure_open()
            for pdu in pdus[done:]:
                lines = self.at.send_pdu(pdu.tpdu_length, pdu.hex, timeout_s=self.options.send_timeout_s)
                answers.append(" ".join(lines) or "OK")
                done += 1
        except AtError as exc:
            outcome = "rejected" if exc.kind == "CMS" and exc.code in PERMANENT_CMS else "failed"
            self._next_check = 0.0  # look at SIM and network at once
            return self._partial(outcome, _explain(exc), pdus, done, digest, ref)
        except ModemGone as exc:
            self.at.close()
            self.state.update(open=False, error=str(exc))
            lost = isinstance(exc, AnswerLost)
            return self._partial("failed", str(exc), pdus, done, digest, ref,
                                 possible_duplicate=lost and len(pdus) == 1)
        if not self.healthy():
            self._next_check = 0.0  # it sent, so what we last saw of SIM and network is out of date
        before = f" (parts {first + 1}-{len(pdus)} of {len(pdus)}; 1-{first} went out before)" if first else ""
        return SendResult("accepted", "; ".join(answers) + before)

    @staticmethod
    def _partial(outcome: str, why: str, pdus: list[Any], done: int, digest: str, ref: int, *,
                 possible_duplicate: bool = False) -> SendResult:
        """A failed or rejected attempt: how far it got, and (for a long message) where the retry resumes."""
        where = f" after {done} of {len(pdus)} part(s)" if done else ""
        resume = {"digest": digest, "ref": ref, "done": done} if len(pdus) > 1 else None
        return SendResult(outcome, f"{why}{where}", possible_duplicate=possible_duplicate,  # type: ignore[arg-type]
                          resume=resume)

    # -- polling: link checks and replies ----------------------------------------------------------
    def poll(self) -> list[IncomingSms]:
        now = time.monotonic()
        try:
            self._ensure_open()
            if now >= self._next_check:
                self._next_check = now + self.options.check_interval_s
                self._check_link()
            self.at.drain()
            announced = any(line.startswith("+CMTI:") for line in self.at.unsolicited)
            self.at.unsolicited.clear()
            if self.options.inbox_poll_s and (announced or now >= self._next_inbox):
                self._next_inbox = now + self.options.inbox_poll_s
                return self._read_inbox()
        except AtError as exc:
            self.state["error"] = _explain(exc)
            if exc.kind == "CME" and exc.code in (10, 13):
                self.state["sim"] = "not inserted" if exc.code == 10 else "failure"
        except ModemGone as exc:
            self.at.close()
            self.state.update(open=False, error=str(exc))
        return []

    def _read_inbox(self) -> list[IncomingSms]:
        lines = self.at.command("AT+CMGL=4", timeout_s=self.options.command_timeout_s)
        out: list[IncomingSms] = []
        delete: list[int] = []
        long: dict[tuple[str, int, int], list[_Listed]] = defaultdict(list)
        for header, pdu in zip(lines[::2], lines[1::2], strict=False):
            match = re.match(r"\+CMGL:\s*(\d+)", header)
            if match is None:
                continue
            index = int(match.group(1))
            try:
                sms = decode_deliver(pdu)
            except ValueError as exc:
                log.warning("modem %s: unreadable message at index %d dropped: %s (PDU %s)", self.name, index,
                            exc, pdu[:80])
                delete.append(index)
                continue
            if sms.concat is None or sms.concat.total <= 1:
                out.append(_incoming(sms, sms.text))
                delete.append(index)
            else:
                long[(sms.number, sms.concat.ref, sms.concat.total)].append(_Listed(index, sms))
        now = time.monotonic()
        self._waiting = {key: seen for key, seen in self._waiting.items() if key in long}
        for key, parts in long.items():
            texts = {p.sms.concat.seq: p.sms.text for p in parts if p.sms.concat is not None}
            if len(texts) == key[2]:
                out.append(_incoming(parts[0].sms, "".join(texts[i] for i in sorted(texts))))
            elif now - self._waiting.setdefault(key, now) >= self.options.part_wait_s:
                log.warning("modem %s: a reply from %s stays incomplete (parts %s of %d) after %g s; deleted: %r",
                            self.name, key[0], sorted(texts), key[2], self.options.part_wait_s,
                            "".join(texts[i] for i in sorted(texts))[:160])
            else:
                continue  # the rest may still come: the parts wait on the SIM, where a restart finds them
            self._waiting.pop(key, None)
            delete += [p.index for p in parts]
        for index in delete:
            try:
                self.at.command(f"AT+CMGD={index}", timeout_s=self.options.command_timeout_s)
            except AtError as exc:
                log.warning("modem %s: could not delete message %d: %s", self.name, index, exc.line)
        return out

    def close(self) -> None:
        self.at.close()
        self.state["open"] = False


class _Listed(NamedTuple):
    """One part of a long reply, listed by ``AT+CMGL`` at ``index`` of the SIM."""

    index: int
    sms: DeliverPdu


def _incoming(sms: DeliverPdu, text: str) -> IncomingSms:
    return IncomingSms(sms.number, text, sms.timestamp.isoformat() if sms.timestamp else "", sms.number_type)
