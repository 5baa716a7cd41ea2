"""Commands to MQTT switches and their reports, over the broker of a configured MQTT source.

One :class:`MqttLink` per broker: its own paho client (``archmon-<site>-control-<source>``, a clean session
so that no command queued while archmon was away is delivered late), the source's address, login and
TLS. On every connection it subscribes to every switch's state and availability topics (retained states
come back at once: the read-back after a restart) and sends the switches' settings (Tasmota
``PulseTime``). Commands go out at QoS 1, never retained, with Nagle's algorithm off (a command is one
small packet: it must not wait for the broker's delayed ACK). Reports are handed to ``on_message`` from
paho's network thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping

import paho.mqtt.client as mqtt

from archmon.errors import ConfigError, TransportError
from archmon.paho import stop_network_loop
from collector.mqtt_config import MqttSourceConfig, tls_problems
from devices.actuators import Availability, MqttSwitch, Publish, SwitchReport

__all__ = ["MqttLink", "control_client_id"]

log = logging.getLogger(__name__)

OnMessage = Callable[[str, SwitchReport | Availability], None]


def control_client_id(site: str, source_id: str) -> str:
    """``archmon-<site>-control-<source id>``: never the collector's own client id on that broker."""
    return f"archmon-{'_'.join(site.split())}-control-{source_id}"


class MqttLink:
    """The switches on one broker.

    Args:
        source: the MQTT source whose broker they are on.
        switches: actuator id → its switch format.
        on_message: called with (actuator id, report or availability) for every message about a switch.
        client_id: the MQTT client id.
        password: the broker password (None: none).
        auto_off_s: actuator id → its device-side auto-off (for the settings sent on connect).
    """

    def __init__(self, source: MqttSourceConfig, switches: Mapping[str, MqttSwitch], on_message: OnMessage, *,
                 client_id: str, password: str | None = None,
                 auto_off_s: Mapping[str, int | None] | None = None) -> None:
        self.source = source
        self.switches = dict(switches)
        self.on_message = on_message
        self.auto_off_s = dict(auto_off_s or {})
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.published = 0
        self.malformed = 0
        self._routes: dict[str, list[str]] = {}
        for ident, switch in self.switches.items():
            for topic in switch.filters():
                self._routes.setdefault(topic, []).append(ident)
        self._sub_mid: int | None = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        client.enable_logger(logging.getLogger("alerts.control.paho"))
        client.reconnect_delay_set(1, int(max(1, source.reconnect_max_s)))
        if source.username is not None or password is not None:
            client.username_pw_set(source.username or "", password)
        if source.tls.enabled:
            problems = tls_problems(source.tls, f"sources ({source.id}).tls")
            if problems:
                raise ConfigError(problems)
            client.tls_set(ca_certs=str(source.tls.ca_file) if source.tls.ca_file else None,
                           certfile=str(source.tls.cert_file) if source.tls.cert_file else None,
                           keyfile=str(source.tls.key_file) if source.tls.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            if source.tls.insecure:
                client.tls_insecure_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (paho's own thread; reconnects with backoff)."""
        self.client.connect_async(self.source.host, self.source.port, keepalive=self.source.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        """End paho's thread, then disconnect (written at once: with the thread still running, paho 2.2
        loops once more on the closed socket and logs an error)."""
        stop_network_loop(self.client)
        self.client.disconnect()
        sock = self.client.socket()
        if sock is not None:  # stopped before the broker answered CONNECT
            sock.close()

    # -- the Link protocol ------------------------------------------------------------------------
    def send(self, actuator: str, on: bool, *, auto_off_s: int | None) -> None:
        """Publish the switch's command.

        Raises:
            TransportError: not connected to the broker.
        """
        switch = self.switches[actuator]
        self._publish(switch.command(on, auto_off_s=auto_off_s if switch.auto_off == "per_command" else None))

    def ask(self, actuator: str) -> bool:
        """Publish the switch's state query (False: it has none; its retained state is all there is)."""
        messages = self.switches[actuator].query()
        if not messages:
            return False
        self._publish(messages)
        return True

    # -- paho callbacks (network thread) ----------------------------------------------------------
    def _publish(self, messages: list[Publish]) -> None:
        if not self.connected.is_set():
            raise TransportError(f"not connected to the broker of source {self.source.id!r}")
        for message in messages:
            info = self.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise TransportError(f"publish to {message.topic} failed: {mqtt.error_string(info.rc)}")
            self.published += 1

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("control link %s: connection refused: %s", self.source.id, reason)
            return
        _no_delay(client)
        self.connected.set()
        topics = sorted(self._routes)
        if topics:
            _, self._sub_mid = client.subscribe([(topic, 1) for topic in topics])
        for ident, switch in self.switches.items():
            for message in switch.setup(auto_off_s=self.auto_off_s.get(ident)):
                client.publish(message.topic, message.payload, qos=1, retain=False)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: object,
                      properties: object = None) -> None:
        if mid == self._sub_mid:
            self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                       properties: object = None) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        for ident in self._routes.get(message.topic, ()):
            try:
                parsed = self.switches[ident].parse(message.topic, message.payload)
            except Exception:  # a bug in a parser must not kill paho's thread
                self.malformed += 1
                log.exception("control link %s: cannot read %s", self.source.id, message.topic)
                continue
            if parsed is not None:
                try:
                    self.on_message(ident, parsed)
                except Exception:
                    log.exception("control link %s: handling %s for %s failed", self.source.id, message.topic, ident)


def _no_delay(client: mqtt.Client) -> None:
    """Send small packets at once: with Nagle's algorithm a command waiting behind an unacknowledged packet
    waits for the peer's delayed ACK (~40 ms on Linux), which paho leaves on."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
