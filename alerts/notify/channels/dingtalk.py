"""DingTalk custom robot (钉钉自定义机器人), with the signature of its "加签" security setting.

POST ``<url>?access_token=<token>&timestamp=<ms>&sign=<sign>`` where sign is
URL-encode(base64(HmacSHA256(key=secret, msg="<timestamp_ms>\\n<secret>"))); the timestamp must be
within an hour of DingTalk's clock. Body ``{"msgtype": "text", "text": {"content": ...}, "at":
{"atMobiles": [...], "isAtAll": false}}``; the mentioned numbers also appear in the text (DingTalk shows
a mention only then). Answer ``{"errcode": 0, "errmsg": "ok"}``; 130101 / 90030 mean "sent too fast"
(the robot is blocked for 10 minutes past 20 messages a minute, so the outbox keeps under that).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from typing import Any, ClassVar

from alerts.notify.channels._robot import RobotChannel, RobotOptions
from alerts.notify.channels.base import ChannelOptions, OutgoingMessage, Recipient

__all__ = ["DingTalkChannel", "DingTalkOptions", "dingtalk_sign"]


class DingTalkOptions(RobotOptions):
    """Options of ``type = "dingtalk"`` (see :class:`RobotOptions`)."""

    url: str = "https://oapi.dingtalk.com/robot/send"


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """The ``sign`` query value (already URL-encoded) for a timestamp."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode("ascii"))


class DingTalkChannel(RobotChannel):
    """DingTalk robot (see the module docstring)."""

    type: ClassVar[str] = "dingtalk"
    Options: ClassVar[type[ChannelOptions]] = DingTalkOptions
    rate_limit_codes = frozenset({130101, 90030})

    def request(self, message: OutgoingMessage, recipient: Recipient) -> tuple[str, dict[str, Any]]:
        token = self.token()
        url = self.options.url + ("&" if "?" in self.options.url else "?")
        url += urllib.parse.urlencode({"access_token": token}) if token else ""
        secret = self.secret()
        if secret:
            now = int(time.time() * 1000)
            url += f"{'&' if token else ''}timestamp={now}&sign={dingtalk_sign(now, secret)}"
        mentions = list(recipient.mentions)
        content = message.text + ("\n" + " ".join(f"@{m}" for m in mentions) if mentions else "")
        return url, {"msgtype": "text", "text": {"content": content},
                     "at": {"atMobiles": mentions, "isAtAll": False}}
