"""WeCom group robot (企业微信群机器人).

POST ``<url>?key=<key>`` with ``{"msgtype": "text", "text": {"content": ..., "mentioned_mobile_list":
[...]}}``; the content is at most 2048 bytes of UTF-8 (longer texts are cut at a character boundary).
No signature: the key is the secret. Answer ``{"errcode": 0, "errmsg": "ok"}``; 45009 means "too many
requests" (about 20 a minute per robot).
"""

from __future__ import annotations

import urllib.parse
from typing import Any, ClassVar

from alerts.notify.channels._robot import RobotChannel, RobotOptions
from alerts.notify.channels.base import ChannelOptions, OutgoingMessage, Recipient

__all__ = ["WeComChannel", "WeComOptions"]

MAX_CONTENT_BYTES = 2048


class WeComOptions(RobotOptions):
    """Options of ``type = "wecom"`` (see :class:`RobotOptions`)."""

    url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"


def _cut(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


class WeComChannel(RobotChannel):
    """WeCom robot (see the module docstring)."""

    type: ClassVar[str] = "wecom"
    Options: ClassVar[type[ChannelOptions]] = WeComOptions
    rate_limit_codes = frozenset({45009})

    def request(self, message: OutgoingMessage, recipient: Recipient) -> tuple[str, dict[str, Any]]:
        url = f"{self.options.url}?{urllib.parse.urlencode({'key': self.token() or ''})}"
        return url, {"msgtype": "text", "text": {"content": _cut(message.text, MAX_CONTENT_BYTES),
                                                 "mentioned_mobile_list": list(recipient.mentions)}}
