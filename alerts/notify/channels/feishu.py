"""Feishu / Lark custom bot (飞书自定义机器人), with its own signature.

POST ``<url>/<token>`` (``https://open.feishu.cn/open-apis/bot/v2/hook/``; Lark:
``open.larksuite.com``) with ``{"msg_type": "text", "content": {"text": ...}}``; with signing also
``"timestamp": "<seconds>"`` and ``"sign"`` = base64(HmacSHA256(key="<timestamp_s>\\n<secret>", msg=empty))
— the key is the string, the message empty, unlike DingTalk. Mentions are ``<at user_id="ou_..."></at>``
with the contacts' Feishu ids (``chat.feishu``). Answer ``{"code": 0, ...}``; 9499 is "too many requests".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, ClassVar

from alerts.notify.channels._robot import RobotChannel, RobotOptions
from alerts.notify.channels.base import ChannelOptions, OutgoingMessage, Recipient

__all__ = ["FeishuChannel", "FeishuOptions", "feishu_sign"]


class FeishuOptions(RobotOptions):
    """Options of ``type = "feishu"`` (see :class:`RobotOptions`)."""

    url: str = "https://open.feishu.cn/open-apis/bot/v2/hook/"


def feishu_sign(timestamp_s: int, secret: str) -> str:
    """The ``sign`` field for a timestamp in seconds."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class FeishuChannel(RobotChannel):
    """Feishu / Lark bot (see the module docstring)."""

    type: ClassVar[str] = "feishu"
    Options: ClassVar[type[ChannelOptions]] = FeishuOptions
    success_key = "code"
    rate_limit_codes = frozenset({9499})
    mention_by = "feishu"

    def request(self, message: OutgoingMessage, recipient: Recipient) -> tuple[str, dict[str, Any]]:
        token = self.token()
        url = self.options.url.rstrip("/") + "/" + token if token else self.options.url
        mentions = "".join(f'<at user_id="{m}"></at>' for m in recipient.mentions)
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": message.text + mentions}}
        secret = self.secret()
        if secret:
            now = int(time.time())
            body.update(timestamp=str(now), sign=feishu_sign(now, secret))
        return url, body
