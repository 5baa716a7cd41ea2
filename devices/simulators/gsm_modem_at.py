"""The AT commands the GSM modem simulator answers, and the state they read and change.

:class:`~devices.simulators.gsm_modem.GsmModemSimulator` reads the serial line and hands each command line to
:meth:`AtCommandSet._command` (and a PDU after ``AT+CMGS`` to :meth:`AtCommandSet._finish_cmgs`), holding its
lock; the answers follow 3GPP TS 27.007 and TS 27.005 as that module's docstring lists them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

from archmon.sms_pdu import DeliverPdu, decode_submit

__all__ = ["AtCommandSet", "Failure", "ModemState", "SentSms", "StoredSms"]

log = logging.getLogger("devices.simulators.gsm_modem")  # the simulator's one logger

Failure = Literal["none", "no_sim", "no_network", "cms_error", "lost_answer", "silent"]


@dataclass(frozen=True, slots=True)
class SentSms:
    """One PDU the modem was asked to send, decoded. ``mr`` is the message reference it answered."""

    mr: int
    length: int
    pdu: str
    decoded: DeliverPdu


@dataclass(slots=True)
class StoredSms:
    """A received message in the SIM store: ``stat`` 0 received unread, 1 received read."""

    index: int
    pdu: str
    stat: int = 0


@dataclass(slots=True)
class ModemState:
    """What the host set (echo, error format, PDU mode, new-message notices), the failure asked for, the
    network as the modem sees it, and the SIM store."""

    echo: bool = True
    cmee: int = 0
    cmgf: int = 0
    cnmi_mt: int = 0
    failure: Failure = "none"
    cms_code: int = 500
    cms_left: int = 0
    good_before_failure: int = 0
    registration: int = 1
    rssi: int = 21
    store: dict[int, StoredSms] = field(default_factory=dict)


class AtCommandSet:
    """The modem's command answers, mixed into the simulator (which owns the line and the lock).

    It reads and changes the simulator's state (``_state``, the SIM ``capacity``, the ``sent`` PDUs, the
    message reference ``_mr``) and answers through its ``_write``.
    """

    capacity: int
    sent: list[SentSms]
    sent_event: threading.Condition
    _state: ModemState
    _mr: int

    def _write(self, text: str) -> None:
        raise NotImplementedError  # the simulator writes to its serial line

    # -- answers ---------------------------------------------------------------------------------
    def _ok(self, *lines: str) -> None:
        self._write("".join(f"\r\n{line}\r\n" for line in lines) + "\r\nOK\r\n")

    def _error(self, kind: Literal["CME", "CMS"], code: int) -> None:
        if self._state.cmee == 0:
            self._write("\r\nERROR\r\n")
        else:
            self._write(f"\r\n+{kind} ERROR: {code}\r\n")

    def _command(self, text: str) -> int | None:
        """Answer one command line; returns the PDU length when ``AT+CMGS`` now waits for a PDU."""
        upper = text.upper()
        if not upper.startswith("AT"):
            self._write("\r\nERROR\r\n")
            return None
        cmd = upper[2:]
        st = self._state
        arg = cmd.partition("=")[2]
        if cmd in ("", "Z", "&F", "V1", "+CMGF?", "I") or cmd.startswith(("+CSCS", "+CSMP")):
            lines = {"+CMGF?": [f"+CMGF: {st.cmgf}"], "I": ["archmon GSM modem simulator"]}.get(cmd, [])
            self._ok(*lines)
        elif cmd in ("E0", "E1"):
            st.echo = cmd == "E1"
            self._ok()
        elif cmd.startswith("+CMEE="):
            st.cmee = int(arg or 0)
            self._ok()
        elif cmd.startswith("+CMGF="):
            st.cmgf = int(arg or 0)
            self._ok() if st.cmgf == 0 else self._error("CMS", 303)  # text mode: not supported here
        elif cmd == "+CPIN?":
            self._ok("+CPIN: READY") if st.failure != "no_sim" else self._error("CME", 10)
        elif cmd in ("+CREG?", "+CEREG?"):
            if st.failure == "no_sim":
                self._error("CME", 10)
            else:
                self._ok(f"{cmd[:-1]}: 0,{st.registration}")
        elif cmd == "+CSQ":
            self._ok(f"+CSQ: {99 if st.failure in ('no_sim', 'no_network') else st.rssi},99")
        elif cmd.startswith("+CNMI="):
            fields = ([*arg.split(","), "0", "0"])[:2]
            st.cnmi_mt = int(fields[1] or 0)
            self._ok()
        elif cmd.startswith("+CPMS"):
            used = len(st.store)
            self._ok(f"+CPMS: {used},{self.capacity},{used},{self.capacity},{used},{self.capacity}")
        elif cmd.startswith("+CMGS="):
            return self._start_cmgs(arg)
        elif cmd.startswith("+CMGR="):
            self._read_one(arg)
        elif cmd.startswith("+CMGL"):
            self._list(arg)
        elif cmd.startswith("+CMGD="):
            self._delete(arg)
        else:
            self._write("\r\nERROR\r\n")
        return None

    def _start_cmgs(self, arg: str) -> int | None:
        if self._state.cmgf != 0:
            self._error("CMS", 302)
            return None
        if not arg.isdigit() or not 7 <= int(arg) <= 164:
            self._error("CMS", 304)  # invalid PDU mode parameter
            return None
        self._write("\r\n> ")
        return int(arg)

    def _finish_cmgs(self, length: int, body: bytes, *, cancelled: bool) -> None:
        if cancelled:
            self._ok()
            return
        st = self._state
        if st.failure == "no_sim":
            self._error("CMS", 310)
            return
        if st.failure == "no_network":
            self._error("CMS", 331)
            return
        failing = st.failure in ("cms_error", "lost_answer") and st.cms_left > 0
        if failing and st.good_before_failure > 0:
            st.good_before_failure -= 1
            failing = False
        if failing:
            st.cms_left -= 1
            failure, st.failure = st.failure, st.failure if st.cms_left else "none"
            if failure == "cms_error":
                self._error("CMS", st.cms_code)
                return
        pdu = body.decode("ascii", "replace").strip()
        try:
            smsc_octets = int(pdu[:2], 16)
            if (len(pdu) // 2) - 1 - smsc_octets != length or len(pdu) % 2:
                raise ValueError(f"length {length} is not the TPDU's {(len(pdu) // 2) - 1 - smsc_octets} octets")
            decoded = decode_submit(pdu)
        except ValueError as exc:
            log.warning("gsm modem simulator: bad PDU %r: %s", pdu[:60], exc)
            self._error("CMS", 304)
            return
        self._mr = (self._mr + 1) % 256
        self.sent.append(SentSms(self._mr, length, pdu, decoded))
        self.sent_event.notify_all()
        if failing:  # lost_answer: the network took it, the host never hears so
            return
        self._ok(f"+CMGS: {self._mr}")

    def _entry(self, sms: StoredSms) -> tuple[str, int]:
        return sms.pdu, len(sms.pdu) // 2 - 1 - int(sms.pdu[:2], 16)

    def _read_one(self, arg: str) -> None:
        st = self._state
        if st.failure == "no_sim":
            self._error("CMS", 310)
            return
        sms = st.store.get(int(arg)) if arg.isdigit() else None
        if sms is None:
            self._error("CMS", 321)
            return
        pdu, length = self._entry(sms)
        stat, sms.stat = sms.stat, 1
        self._ok(f"+CMGR: {stat},,{length}", pdu)

    def _list(self, arg: str) -> None:
        st = self._state
        if st.failure == "no_sim":
            self._error("CMS", 310)
            return
        wanted = int(arg) if arg.isdigit() else 4
        if wanted not in (0, 1, 2, 3, 4):
            self._error("CMS", 304)
            return
        lines: list[str] = []
        for index in sorted(st.store):
            sms = st.store[index]
            if wanted != 4 and sms.stat != wanted:
                continue
            pdu, length = self._entry(sms)
            lines += [f"+CMGL: {index},{sms.stat},,{length}", pdu]
            sms.stat = 1
        self._write("".join(f"\r\n{line}" for line in lines) + ("\r\n" if lines else "") + "\r\nOK\r\n")

    def _delete(self, arg: str) -> None:
        st = self._state
        index_text, _, flag_text = arg.partition(",")
        flag = int(flag_text or 0)
        if flag == 4 or flag == 1 or flag == 3:  # delete all / all read (3: read, sent and unsent)
            for index in [i for i, s in st.store.items() if flag == 4 or s.stat == 1]:
                del st.store[index]
            self._ok()
            return
        if not index_text.isdigit():
            self._error("CMS", 321)
            return
        st.store.pop(int(index_text), None)  # 27.005: deleting an empty slot is not an error
        self._ok()
