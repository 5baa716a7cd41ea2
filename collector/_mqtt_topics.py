"""Changing a running MQTT source's subscriptions on its open connection (``archmon run`` on SIGHUP).

New filters are subscribed and dropped ones unsubscribed without a reconnect, so nothing in flight is
disturbed; the caller waits (bounded) for the broker's SUBACK. A reconnect subscribes the whole new list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["PendingSubscriptions", "TopicChange"]

_LOG = logging.getLogger("collector.mqtt")


class TopicChange(NamedTuple):
    """What :meth:`collector.mqtt.MqttSource.set_topics` changed."""

    added: list[str]
    removed: list[str]


class _Waiting(NamedTuple):
    topics: list[str]
    answered: threading.Event


class PendingSubscriptions:
    """SUBACKs awaited for subscriptions made on an open connection, by packet id.

    Args:
        name: the source's name for log lines.
        count: adds to one of the source's counters (``subscribe_failures``).
    """

    def __init__(self, name: str, count: Callable[[str, int], None]) -> None:
        self._name = name
        self._count = count
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiting] = {}

    def subscribe(self, client: mqtt.Client, subscriptions: Sequence[Any], topics: list[str], *,
                  timeout: float) -> bool:
        """Subscribe ``topics`` now and wait up to ``timeout`` s for the broker's answer; False if none came."""
        answered = threading.Event()
        with self._lock:  # the SUBACK may arrive before subscribe() returns: answered() waits for this lock
            result, mid = client.subscribe(list(subscriptions))
            if result == mqtt.MQTT_ERR_SUCCESS:
                self._waiting[mid] = _Waiting(topics, answered)
        if result != mqtt.MQTT_ERR_SUCCESS:
            self._count("subscribe_failures", len(topics))
            _LOG.error("%s: subscribe to %s failed: %s", self._name, topics, mqtt.error_string(result))
            return False
        if not answered.wait(timeout):
            _LOG.warning("%s: no answer to the subscription of %s within %g s", self._name, topics, timeout)
            return False
        return True

    def answered(self, mid: int, reason_codes: Sequence[ReasonCode]) -> bool:
        """Take a SUBACK (network thread); False when ``mid`` is not one of ours."""
        with self._lock:
            waiting = self._waiting.pop(mid, None)
        if waiting is None:
            return False
        for topic, code in zip(waiting.topics, reason_codes, strict=False):
            if code.is_failure:
                self._count("subscribe_failures", 1)
                _LOG.error("%s: broker refused subscription to %r: %s", self._name, topic, code)
        waiting.answered.set()
        return True
