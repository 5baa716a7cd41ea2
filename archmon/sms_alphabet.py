"""The GSM 03.38 alphabet (3GPP TS 23.038) and SMS lengths: which texts go as 7-bit, how they are packed,
and how a long text is split into the parts of a concatenated SMS.

- GSM 7-bit default alphabet with the extension table (``{ } [ ] ~ \\ ^ | €`` cost two septets: ESC +
  code), septets packed LSB first, after the fill bits that align them past a user-data header; anything
  else (Chinese) goes as UCS2 (UTF-16 big endian; a character outside the BMP takes two code units).
- One message carries 160 septets or 70 UCS2 units; a concatenated part 153 septets or 67 units (the
  6-octet header, and one fill bit, take the rest). A part never ends inside an escape sequence or a
  surrogate pair.

Pure functions of the standard library, used by :mod:`archmon.sms_pdu`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "Alphabet", "SplitText", "gsm7_encodable", "gsm7_septets",
           "gsm7_text", "pack_septets", "split_text", "unpack_septets"]

# GSM 03.38 default alphabet, code 0x00..0x7F (0x1B is the escape to the extension table).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {"\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
                  "|": 0x40, "€": 0x65}
_BASIC_CODE = {ch: code for code, ch in enumerate(GSM7_BASIC) if code != 0x1B}
_EXT_CHAR = {code: ch for ch, code in GSM7_EXTENSION.items()}
ESC = 0x1B

SINGLE_SEPTETS, PART_SEPTETS = 160, 153
SINGLE_UNITS, PART_UNITS = 70, 67
Alphabet = Literal["gsm7", "ucs2", "8bit"]


class SplitText(NamedTuple):
    """What :func:`split_text` says about a text: the alphabet it needs and its parts."""

    alphabet: Alphabet
    parts: list[str]


def gsm7_encodable(text: str) -> bool:
    """Whether every character is in the GSM 7-bit default alphabet or its extension table."""
    return all(ch in _BASIC_CODE or ch in GSM7_EXTENSION for ch in text)


def gsm7_septets(ch: str) -> list[int]:
    """The septets of one character (two for the extension table: ESC and its code)."""
    if ch in _BASIC_CODE:
        return [_BASIC_CODE[ch]]
    return [ESC, GSM7_EXTENSION[ch]]


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first, after ``fill_bits`` zero bits (the padding after a user-data header)."""
    value, bits, out = 0, fill_bits, bytearray()
    for septet in septets:
        value |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(value & 0xFF)
            value >>= 8
            bits -= 8
    if bits:
        out.append(value & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """The first ``count`` septets packed in ``data`` after ``fill_bits`` bits."""
    value = int.from_bytes(data, "little")
    return [(value >> (fill_bits + 7 * i)) & 0x7F for i in range(count)]


def gsm7_text(septets: list[int]) -> str:
    """The text of septets (an unknown extension code reads as a space, as TS 23.038 asks)."""
    out, escape = [], False
    for code in septets:
        if escape:
            out.append(_EXT_CHAR.get(code, " "))  # 23.038: an unknown extension code shows as a space
            escape = False
        elif code == ESC:
            escape = True
        else:
            out.append(GSM7_BASIC[code])
    return "".join(out)


def _ucs2_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def split_text(text: str) -> SplitText:
    """The alphabet a text needs and its parts (one part when it fits a single message).

    Returns:
        ``SplitText("gsm7" | "ucs2", parts)``; parts never split an escape sequence or a surrogate pair.
    """
    if gsm7_encodable(text):
        cost, single, per_part, alphabet = (lambda ch: len(gsm7_septets(ch))), SINGLE_SEPTETS, PART_SEPTETS, \
            "gsm7"
    else:
        cost, single, per_part, alphabet = _ucs2_units, SINGLE_UNITS, PART_UNITS, "ucs2"
    if sum(cost(ch) for ch in text) <= single:
        return SplitText(alphabet, [text])  # type: ignore[arg-type]
    parts, current, used = [], [], 0
    for ch in text:
        c = cost(ch)
        if used + c > per_part:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += c
    if current:
        parts.append("".join(current))
    return SplitText(alphabet, parts)  # type: ignore[arg-type]
