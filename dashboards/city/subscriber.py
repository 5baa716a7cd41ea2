"""The central archmon's connection to the city's broker: every site's health and alerts into a CityState."""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt

from archmon.config import Config
from archmon.paho import stop_network_loop
from dashboards.city.link import city_client
from dashboards.city.state import CityState
from dashboards.city.topics import ALERTS_FILTER, STATUS_FILTERS, site_topic

__all__ = ["CitySubscriber"]

log = logging.getLogger("dashboards.city")


class CitySubscriber:
    """Subscribes to ``archmon/+/status``, ``archmon/+/status/+`` and ``archmon/+/alerts/+`` (QoS 1) and feeds
    ``state``; reconnects by itself (the retained messages rebuild the state each time).

    Args:
        config: the central archmon's configuration (``config.central`` must be set).
        state: where the messages go (default: a new one with ``[central] stale_factor``).
    """

    def __init__(self, config: Config, state: CityState | None = None) -> None:
        central = config.central
        if central is None:
            raise ValueError("no [central] table")
        self.link = central.broker
        self.state = state or CityState(central.stale_factor)
        client_id = self.link.client_id or f"archmon-central-{site_topic(config.site.name)}"
        self.client = city_client(config, self.link, client_id=client_id, where="central.broker")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.messages = 0

    def start(self) -> None:
        """Connect in the background (an unreachable broker is retried, never waited for)."""
        self.client.connect_async(self.link.host, self.link.port, keepalive=self.link.keepalive_s)
        self.client.loop_start()

    def stop(self, timeout: float = 2.0) -> None:
        """Disconnect."""
        self.client.disconnect()
        stop_network_loop(self.client)

    @property
    def connected(self) -> bool:
        """True while connected to the city's broker."""
        return bool(self.client.is_connected())

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if reason.is_failure:
            log.warning("central: the city's broker refused the connection: %s", reason)
            return
        self.state.connected()
        client.subscribe([(ALERTS_FILTER, 1), *((f, 1) for f in STATUS_FILTERS)])
        log.info("central: subscribed to every site's status and alerts on %s:%d", self.link.host, self.link.port)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages += 1
        try:
            self.state.on_message(message.topic, message.payload, retained=bool(message.retain))
        except Exception:  # one bad message costs itself, never the connection
            log.exception("central: message on %s not understood", message.topic)
