"""SMS PDUs (3GPP TS 23.040 / GSM 03.40, alphabet GSM 03.38): SMS-SUBMIT to send, SMS-DELIVER received.

Pure functions, shared by the GSM modem channel (``alerts.notify.channels.gsm_modem``) and the modem
simulator (``devices.simulators.gsm_modem``); in the core because both sides use it and it needs nothing
but the standard library.

- **Alphabets and lengths** are in :mod:`archmon.sms_alphabet` (GSM 7-bit or UCS2; 160/70 in one
  message, 153/67 per part). A longer text is split into parts with a user-data header
  ``05 00 03 <ref> <total> <seq>`` (IEI 0x00, 8-bit reference); 7-bit septets start after fill bits that
  align them to a septet boundary past the header.
- **SMS-SUBMIT.** SMSC field ``00`` (the SIM's SMSC), first octet ``0x11`` (``0x51`` with a header: TP-MTI
  submit, TP-VPF relative, TP-UDHI), TP-MR ``00`` (the modem assigns it), destination (type ``91`` for
  ``+`` international numbers, ``81`` otherwise; digits nibble-swapped, padded with F), TP-PID ``00``,
  TP-DCS ``00`` (7-bit) or ``08`` (UCS2), TP-VP relative (``0xA7`` = 24 h), TP-UDL, TP-UD.
  ``AT+CMGS=<n>`` takes the TPDU length in octets without the SMSC field (:attr:`SubmitPdu.tpdu_length`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, NamedTuple

from archmon.sms_alphabet import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SINGLE_SEPTETS,
    Alphabet,
    SplitText,
    gsm7_encodable,
    gsm7_septets,
    gsm7_text,
    pack_septets,
    split_text,
    unpack_septets,
)

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Concat",
    "DeliverPdu",
    "NumberType",
    "SplitText",
    "SubmitPdu",
    "decode_deliver",
    "decode_submit",
    "encode_deliver",
    "encode_submit",
    "gsm7_encodable",
    "split_text",
    "validity_octet",
]

NumberType = Literal["unknown", "international", "national", "alphanumeric", "other"]
"""The type of number of an address (TS 23.040 §9.1.2.5, bits 6..4 of the type-of-address octet)."""
_TON: dict[int, NumberType] = {0: "unknown", 1: "international", 2: "national", 5: "alphanumeric"}



@dataclass(frozen=True, slots=True)
class Concat:
    """The concatenation header of one part: reference, total parts, this part's number (1-based)."""

    ref: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class SubmitPdu:
    """One SMS-SUBMIT ready for ``AT+CMGS``.

    Attributes:
        hex: the whole PDU (SMSC field first) as upper-case hex, as written after the ``>`` prompt.
        tpdu_length: octets after the SMSC field (the ``AT+CMGS=<n>`` argument).
        text: the text this part carries.
        concat: its concatenation header (None for a single message).
    """

    hex: str
    tpdu_length: int
    text: str
    concat: Concat | None = None


@dataclass(frozen=True, slots=True)
class DeliverPdu:
    """A decoded SMS-DELIVER (or, from :func:`decode_submit`, SMS-SUBMIT: ``number`` is the destination).

    Attributes:
        number: originating address (``+8613800000000``; alphanumeric senders as text).
        number_type: the address's type of number: ``alphanumeric`` for a sender name (a bank's
            ``ZHANG13800000001`` is a name, not a phone number), ``international`` for ``+``...
        text: the decoded user data (without header).
        alphabet: ``gsm7``, ``ucs2`` or ``8bit`` (8-bit data decoded as Latin-1).
        concat: the concatenation header, if any.
        timestamp: the service centre time stamp (SMS-DELIVER), None for SMS-SUBMIT.
        dcs: the raw TP-DCS; validity: the raw TP-VP octet of a relative validity (SMS-SUBMIT), else None.
    """

    number: str
    text: str
    alphabet: Alphabet
    concat: Concat | None = None
    timestamp: dt.datetime | None = None
    dcs: int = 0
    validity: int | None = None
    number_type: NumberType = "unknown"


# -- addresses and time stamps ----------------------------------------------------------------
def _swap_digits(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex("".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2)))


def _unswap_digits(data: bytes, count: int) -> str:
    out = "".join(f"{b:02X}"[::-1] for b in data)
    return out[:count].replace("A", "*").replace("B", "#")


def _encode_address(number: str) -> bytes:
    digits = number.strip().replace(" ", "").replace("-", "")
    international = digits.startswith("+")
    digits = digits.lstrip("+")
    if not digits.isdigit() or not 1 <= len(digits) <= 20:
        raise ValueError(f"not a phone number: {number!r} (digits, optionally a leading +)")
    return bytes([len(digits), 0x91 if international else 0x81]) + _swap_digits(digits)


def _encode_sender(name: str, alphanumeric: bool) -> bytes:
    """An originating address: a number, or a sender name (alphanumeric, type ``D0``, 7-bit packed)."""
    if not alphanumeric and name.lstrip("+").replace(" ", "").replace("-", "").isdigit():
        return _encode_address(name)
    if not name or len(name) > 11 or not gsm7_encodable(name):
        raise ValueError(f"not a phone number nor a sender name: {name!r}")
    septets = [s for ch in name for s in gsm7_septets(ch)]
    return bytes([(len(septets) * 7 + 3) // 4, 0xD0]) + pack_septets(septets)


class _Address(NamedTuple):
    number: str
    type: NumberType
    end: int  # the position after the address field


def _decode_address(data: bytes, pos: int) -> _Address:
    count, kind = data[pos], data[pos + 1]
    size = (count + 1) // 2
    raw = data[pos + 2: pos + 2 + size]
    if len(raw) < size:
        raise ValueError("PDU ends inside an address")
    ton = _TON.get((kind >> 4) & 0x07, "other")
    if ton == "alphanumeric":  # a sender name (a bank's, a shop's), 7-bit packed
        number = gsm7_text(unpack_septets(raw, count * 4 // 7))
    else:
        number = _unswap_digits(raw, count)
        if ton == "international":
            number = "+" + number
    return _Address(number, ton, pos + 2 + size)


def _bcd(octet: int) -> int:
    return (octet & 0x0F) * 10 + (octet >> 4)


def _decode_scts(data: bytes) -> dt.datetime:
    year, month, day, hour, minute, second = (_bcd(b) for b in data[:6])
    tz = data[6]
    quarters = (tz & 0x07) * 10 + (tz >> 4)
    offset = dt.timedelta(minutes=15 * quarters) * (-1 if tz & 0x08 else 1)
    return dt.datetime(2000 + year, month, day, hour, minute, second, tzinfo=dt.timezone(offset))


def _encode_scts(moment: dt.datetime) -> bytes:
    offset = moment.utcoffset() or dt.timedelta()
    quarters = int(abs(offset.total_seconds()) // 900)
    fields = [moment.year % 100, moment.month, moment.day, moment.hour, moment.minute, moment.second]
    out = bytes(((v % 10) << 4) | (v // 10) for v in fields)
    tz = ((quarters % 10) << 4) | (quarters // 10) | (0x08 if offset < dt.timedelta() else 0)
    return out + bytes([tz])


def validity_octet(hours: float) -> int:
    """TP-VP relative format for a validity of ``hours`` (rounded down to what the format can say)."""
    minutes = hours * 60
    if minutes <= 720:
        return max(0, int(minutes // 5) - 1)
    if minutes <= 1440:
        return 143 + int((minutes - 720) // 30)
    if hours <= 30 * 24:
        return 166 + int(hours // 24)
    return min(255, 192 + int(hours // (24 * 7)))


# -- user data ----------------------------------------------------------------------------------
def _user_data(text: str, alphabet: Alphabet, concat: Concat | None) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for a text, with the concatenation header if any."""
    udh = b"" if concat is None else bytes([5, 0x00, 3, concat.ref & 0xFF, concat.total, concat.seq])
    if alphabet == "gsm7":
        septets = [s for ch in text for s in gsm7_septets(ch)]
        header_septets = (len(udh) * 8 + 6) // 7
        fill = header_septets * 7 - len(udh) * 8
        return header_septets + len(septets), udh + pack_septets(septets, fill)
    body = text.encode("utf-16-be")
    return len(udh) + len(body), udh + body


class _UserData(NamedTuple):
    text: str
    alphabet: Alphabet
    concat: Concat | None


def _read_user_data(data: bytes, pos: int, dcs: int, udhi: bool) -> _UserData:
    alphabet = _alphabet_of(dcs)
    udl = data[pos]
    ud = data[pos + 1:]
    concat = None
    header_len = 0
    if udhi and ud:
        header_len = ud[0] + 1
        concat = _concat_of(ud[1:header_len])
    if alphabet == "gsm7":
        header_septets = (header_len * 8 + 6) // 7
        fill = header_septets * 7 - header_len * 8
        count = udl - header_septets
        if (header_len * 8 + fill + count * 7 + 7) // 8 > len(ud):
            raise ValueError(f"user data shorter than its length ({udl} septets)")
        return _UserData(gsm7_text(unpack_septets(ud[header_len:], count, fill)), alphabet, concat)
    if udl > len(ud):
        raise ValueError(f"user data shorter than its length ({udl} octets)")
    body = ud[header_len:udl]
    if alphabet == "ucs2":
        return _UserData(body.decode("utf-16-be", errors="replace"), alphabet, concat)
    return _UserData(body.decode("latin-1"), alphabet, concat)


def _alphabet_of(dcs: int) -> Alphabet:
    """The alphabet of a TP-DCS (TS 23.038 §4).

    ``00xx xxxx`` (general data coding) and ``01xx xxxx`` (the same, message marked for automatic deletion)
    carry the alphabet in bits 3..2; ``1100``/``1101`` (message waiting, discard/store) are 7-bit, ``1110``
    (message waiting, store) is UCS2, ``1111`` (data coding / message class) has bit 2 for 8-bit data.
    The reserved groups ``1000``..``1011`` are read as 7-bit, as the specification asks of a receiver.

    Raises:
        ValueError: a compressed text (bit 5 of the general groups), which no phone sends.
    """
    group = dcs >> 4
    if group < 0x8:
        if dcs & 0x20:
            raise ValueError(f"compressed text (TP-DCS {dcs:02X}) is not supported")
        return ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 0x03]  # type: ignore[return-value]
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    if group == 0xE:
        return "ucs2"
    return "gsm7"


def _concat_of(header: bytes) -> Concat | None:
    i = 0
    while i + 1 < len(header):
        iei, size = header[i], header[i + 1]
        value = header[i + 2: i + 2 + size]
        if iei == 0x00 and size == 3:
            return Concat(value[0], value[1], value[2])
        if iei == 0x08 and size == 4:  # 16-bit reference
            return Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
        i += 2 + size
    return None


# -- SMS-SUBMIT ---------------------------------------------------------------------------------
def encode_submit(number: str, text: str, *, ref: int = 0, validity: int = 0xA7) -> list[SubmitPdu]:
    """The SMS-SUBMIT PDUs that send ``text`` to ``number`` (several when it needs concatenation).

    Args:
        number: destination, ``+8613800000000`` (international) or national digits.
        text: the message; GSM 7-bit when every character allows it, else UCS2.
        ref: the concatenation reference (0..255), the same for every part of this message.
        validity: TP-VP, relative format (default 0xA7: 24 hours).

    Raises:
        ValueError: not a phone number, empty text, or more than 255 parts.
    """
    if not text:
        raise ValueError("an SMS needs a text")
    address = _encode_address(number)
    alphabet, parts = split_text(text)
    if len(parts) > 255:
        raise ValueError(f"text too long for one concatenated SMS ({len(parts)} parts)")
    dcs = 0x00 if alphabet == "gsm7" else 0x08
    out = []
    for seq, part in enumerate(parts, start=1):
        concat = Concat(ref & 0xFF, len(parts), seq) if len(parts) > 1 else None
        udl, ud = _user_data(part, alphabet, concat)
        first = 0x11 | (0x40 if concat else 0)
        tpdu = bytes([first, 0x00]) + address + bytes([0x00, dcs, validity & 0xFF, udl]) + ud
        out.append(SubmitPdu(hex=("00" + tpdu.hex()).upper(), tpdu_length=len(tpdu), text=part, concat=concat))
    return out


def decode_submit(pdu_hex: str, *, with_smsc: bool = True) -> DeliverPdu:
    """Decode an SMS-SUBMIT (what a modem is asked to send); ``number`` is its destination.

    Raises:
        ValueError: not hex, not an SMS-SUBMIT, or truncated.
    """
    data = bytes.fromhex(pdu_hex.strip())
    try:
        pos = 1 + data[0] if with_smsc else 0
        first = data[pos]
        if first & 0x03 != 0x01:
            raise ValueError(f"not an SMS-SUBMIT (first octet {first:02X})")
        address = _decode_address(data, pos + 2)  # skip TP-MR
        number, pos = address.number, address.end
        dcs = data[pos + 1]
        pos += 2
        vpf = (first >> 3) & 0x03
        validity = data[pos] if vpf == 0x02 else None
        pos += {0: 0, 2: 1}.get(vpf, 7)
        text, alphabet, concat = _read_user_data(data, pos, dcs, bool(first & 0x40))
    except IndexError:
        raise ValueError("PDU truncated") from None
    return DeliverPdu(number=number, text=text, alphabet=alphabet, concat=concat, dcs=dcs, validity=validity,
                      number_type=address.type)


# -- SMS-DELIVER --------------------------------------------------------------------------------
def encode_deliver(number: str, text: str, *, timestamp: dt.datetime, smsc: str = "+8613800100500",
                   concat: Concat | None = None, alphanumeric: bool = False) -> str:
    """An SMS-DELIVER as a modem lists it (``AT+CMGR``/``AT+CMGL`` in PDU mode), SMSC field first.

    ``number`` may be a sender name (``Bank``; up to 11 characters): it goes as an alphanumeric address, as
    does any ``number`` with ``alphanumeric`` (a sender *name* made of digits, ``13800000001``, which
    must never pass for that phone number).

    Raises:
        ValueError: a bad number, or a text that does not fit one (part of a) message.
    """
    alphabet: Alphabet = "gsm7" if gsm7_encodable(text) else "ucs2"
    udl, ud = _user_data(text, alphabet, concat)
    if (alphabet == "gsm7" and udl > SINGLE_SEPTETS) or (alphabet == "ucs2" and udl > 140):
        raise ValueError("text does not fit one SMS-DELIVER")
    sca = _encode_address(smsc)[1:]  # the SMSC field counts octets, not digits
    first = 0x04 | (0x40 if concat else 0)
    tpdu = (bytes([first]) + _encode_sender(number, alphanumeric) + bytes([0x00, 0x00 if alphabet == "gsm7" else 0x08])
            + _encode_scts(timestamp) + bytes([udl]) + ud)
    return (bytes([len(sca)]) + sca + tpdu).hex().upper()


def decode_deliver(pdu_hex: str) -> DeliverPdu:
    """Decode an SMS-DELIVER as listed by a modem (SMSC field first).

    Raises:
        ValueError: not hex, not an SMS-DELIVER, or truncated.
    """
    try:
        data = bytes.fromhex(pdu_hex.strip())
    except ValueError:
        raise ValueError(f"not a hex PDU: {pdu_hex[:40]!r}") from None
    try:
        pos = 1 + data[0]
        first = data[pos]
        if first & 0x03 != 0x00:
            raise ValueError(f"not an SMS-DELIVER (first octet {first:02X})")
        address = _decode_address(data, pos + 1)
        pos = address.end
        dcs = data[pos + 1]
        timestamp = _decode_scts(data[pos + 2: pos + 9])
        text, alphabet, concat = _read_user_data(data, pos + 9, dcs, bool(first & 0x40))
    except IndexError:
        raise ValueError("PDU truncated") from None
    return DeliverPdu(number=address.number, text=text, alphabet=alphabet, concat=concat, timestamp=timestamp,
                      dcs=dcs, number_type=address.type)
