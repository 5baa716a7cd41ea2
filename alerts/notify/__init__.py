"""Notifications that reach people: channels (GSM modem SMS, e-mail, chat robots, webhooks, SMS HTTP
platforms), routes, grouping, repeats and escalation through a durable outbox, acknowledgement by SMS reply.

See ``docs/notify.md``.
"""

from alerts.notify.channels import CHANNELS
from alerts.notify.notifier import Notifier, build_notifier, reload_notifier
from alerts.notify.settings import NotifyConfig, NotifyPlan, load_notify, notify_problems, run_problems

__all__ = [
           "CHANNELS",
           "Notifier",
           "NotifyConfig",
           "NotifyPlan",
           "build_notifier",
           "check_config",
           "check_run_config",
           "load_notify",
           "notify_problems",
           "reload_notifier",
           "run_problems",
]

check_config = notify_problems
"""For ``archmon check-config``: schema, references and every secret (strict)."""
check_run_config = run_problems
"""For ``archmon run`` (start and reload): schema and references; a missing secret fails only its channel."""
