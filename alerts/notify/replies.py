"""Acknowledging alerts by replying to the SMS: what a reply means and what is done with it.

A reply from a known contact's number acknowledges alerts, with the comment "acknowledged by SMS from
<name>" (audited by the alert store like any acknowledgement), which stops their repeats:

- ``1``, ``确认``, ``ACK``, ``OK`` or ``收到`` alone: the alerts of the newest alert SMS sent to that number
  (all of a grouped message);
- ``确认 1234``, ``ACK 1234``, ``1 1234``, ``ack #1234, 1235`` or the id alone (``1234``): those alerts.

Full-width characters are read as their ASCII forms (``１２３４``, ``ＡＣＫ``). A reply from an unknown number
or one that says nothing of the above is logged and answered with a short help text, at most once per
number per ``help_reply_interval_s`` (so an operator's automatic notices cannot start an SMS loop).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = ["HELP_TEXT", "Reply", "parse_reply"]

_WORDS = ("确认", "ack", "ok", "收到", "1")
_IDS = re.compile(r"^(?:(?:确认|ack|ok|收到)\s*[#:：,，]?\s*|1[\s#:：,，]+)?((?:#?\d+[\s,，、]*)+)$")

HELP_TEXT = {
    "zh": "archmon：回复 1 确认最近的告警，或“确认 告警号”（如 确认 1234）。",
    "en": "archmon: reply 1 to acknowledge the latest alert, or \"ACK <id>\" (e.g. ACK 1234).",
}
UNKNOWN_TEXT = {
    "zh": "archmon：本号码未登记为值班联系人，无法确认告警。",
    "en": "archmon: this number is not a registered contact; it cannot acknowledge alerts.",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """What a reply asks: ``ack_last`` (the newest alert SMS), ``ack`` (``ids``) or ``unknown``."""

    kind: Literal["ack_last", "ack", "unknown"]
    ids: tuple[int, ...] = ()


def parse_reply(text: str) -> Reply:
    """Read a reply SMS."""
    normal = unicodedata.normalize("NFKC", text).strip().lower().rstrip("。.!！")
    if normal in _WORDS:
        return Reply("ack_last")
    match = _IDS.match(normal)
    if match:
        ids = tuple(int(n) for n in re.findall(r"\d+", match.group(1)))
        return Reply("ack", ids)
    return Reply("unknown")
