"""Notifications that reach people: channels (GSM modem SMS, e-mail, chat robots, webhooks, SMS HTTP
platforms), routes, grouping, repeats and escalation through a durable outbox, acknowledgement by SMS reply.

See ``docs/notify.md``.
"""

from alerts.notify.channels import CHANNELS
from alerts.notify.notifier import Notifier, build_notifier
from alerts.notify.settings import NotifyConfig, NotifyPlan, load_notify, notify_problems

__all__ = [
           "CHANNELS",
           "Notifier",
           "NotifyConfig",
           "NotifyPlan",
           "build_notifier",
           "check_config",
           "load_notify",
           "notify_problems",
]

check_config = notify_problems
