"""Notification channels, one module each, and the registry the notifier builds them from (type → class).

Every channel module has a sample table beside it (``<module>.sample.toml``), loaded by a test through
the real schema.
"""

from __future__ import annotations

from alerts.notify.channels.base import (
    Channel,
    ChannelOptions,
    IncomingSms,
    OutgoingMessage,
    Recipient,
    SendResult,
)
from alerts.notify.channels.dingtalk import DingTalkChannel
from alerts.notify.channels.feishu import FeishuChannel
from alerts.notify.channels.gsm_modem import GsmModemChannel
from alerts.notify.channels.sms_http import SmsHttpChannel
from alerts.notify.channels.smtp import SmtpChannel
from alerts.notify.channels.webhook import WebhookChannel
from alerts.notify.channels.wecom import WeComChannel

__all__ = ["CHANNELS", "Channel", "ChannelOptions", "IncomingSms", "OutgoingMessage", "Recipient", "SendResult"]

CHANNELS: dict[str, type[Channel]] = {
    "gsm_modem": GsmModemChannel,
    "smtp": SmtpChannel,
    "dingtalk": DingTalkChannel,
    "wecom": WeComChannel,
    "feishu": FeishuChannel,
    "webhook": WebhookChannel,
    "sms_http": SmsHttpChannel,
}
