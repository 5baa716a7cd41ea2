"""Simulated MQTT sensors (Zigbee2MQTT, Tasmota, Shelly Gen1/Gen2, ESPHome) and a fleet that publishes them.

Each simulator's pure :meth:`payloads` gives the messages the real device would publish (DESIGN.md §9,
``notes/devices.md``) for ``values``: ``temperature`` (°C), ``humidity`` (%RH), ``door`` (1 = open),
``smoke``, ``leak`` (0/1). :class:`SimulatorFleet` publishes every device every ``interval_s`` over one
paho client (QoS 1) in a background thread, with values from a :class:`RoomModel` per device.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from archmon import climate
from archmon.paho import stop_network_loop
from archmon.quantities import BINARY_QUANTITIES
from archmon.timeutil import from_ms, now_ms, to_iso
from devices.simulators.climate import RoomModel

__all__ = ["EsphomeNode", "FleetCounters", "Message", "MqttDevice", "ShellyGen1HT", "ShellyGen2HT",
           "SimulatorFleet", "TasmotaSensor", "Zigbee2MqttSensor"]

logger = logging.getLogger(__name__)

Message = tuple[str, bytes, bool]
"""One MQTT message: ``(topic, payload, retain)``."""

ZigbeeKind = Literal["temperature_humidity", "door", "smoke", "leak"]
_ZIGBEE_MODELS = {"temperature_humidity": "WSDCGQ11LM", "door": "MCCGQ11LM", "smoke": "JTYJ-GD-01LM/BW",
                  "leak": "SJCGQ11LM"}


def _json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _need(values: Mapping[str, float], key: str, device: str) -> float:
    try:
        return float(values[key])
    except KeyError:
        raise KeyError(f"{device}: values have no {key!r} (got {sorted(values)})") from None


class MqttDevice(ABC):
    """A simulated device: what it publishes for given values, and its availability messages."""

    name: str
    """The device's identity (friendly name, Tasmota topic, Shelly id or topic prefix)."""

    @abstractmethod
    def payloads(self, ts_ms: int, values: Mapping[str, float]) -> list[Message]:
        """The messages the device publishes at ``ts_ms`` for ``values`` (pure).

        Args:
            ts_ms: the device's time of the reading (UTC epoch ms).
            values: quantity name -> value (see module docstring).

        Returns:
            ``(topic, payload, retain)`` tuples.

        Raises:
            KeyError: if a value the device reports is missing.
        """

    @abstractmethod
    def availability(self, online: bool) -> list[Message]:
        """The retained online/offline (birth/LWT) messages of the device."""


@dataclass
class Zigbee2MqttSensor(MqttDevice):
    """A Zigbee sensor seen through Zigbee2MQTT: ``<base_topic>/<name>`` JSON state messages.

    Args:
        name: the friendly name.
        kind: which sensor it is.
        model: the device model (informational; defaults to a common Aqara/Xiaomi model for the kind).
        base_topic: Zigbee2MQTT's base topic.
        battery: battery percentage reported.
        retain_state: publish state messages retained (some sites do, so door state survives restarts).
    """

    name: str
    kind: ZigbeeKind
    model: str = ""
    base_topic: str = "zigbee2mqtt"
    battery: int = 97
    retain_state: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _ZIGBEE_MODELS:
            raise ValueError(f"Zigbee2MqttSensor {self.name!r}: unknown kind {self.kind!r}")
        self.model = self.model or _ZIGBEE_MODELS[self.kind]

    @property
    def topic(self) -> str:
        """The state topic."""
        return f"{self.base_topic}/{self.name}"

    def payloads(self, ts_ms: int, values: Mapping[str, float]) -> list[Message]:
        state: dict[str, Any] = {}
        if self.kind == "temperature_humidity":
            state["temperature"] = round(_need(values, "temperature", self.name), 2)
            state["humidity"] = round(_need(values, "humidity", self.name), 2)
        elif self.kind == "door":
            state["contact"] = not bool(_need(values, "door", self.name))
        elif self.kind == "smoke":
            state.update(smoke=bool(_need(values, "smoke", self.name)), battery_low=False, tamper=False)
        else:
            state.update(water_leak=bool(_need(values, "leak", self.name)), battery_low=False)
        state.update(battery=self.battery, voltage=2700 + 3 * self.battery,
                     linkquality=100 + (ts_ms // 60_000 + len(self.name)) % 45, last_seen=to_iso(ts_ms))
        return [(self.topic, _json(state), self.retain_state)]

    def availability(self, online: bool) -> list[Message]:
        return [(f"{self.topic}/availability", _json({"state": "online" if online else "offline"}), True)]


@dataclass
class TasmotaSensor(MqttDevice):
    """A Tasmota device with a temperature/humidity sensor: ``tele/<topic>/SENSOR`` every TelePeriod.

    Args:
        topic: the device's Tasmota topic.
        sensor: the sensor block name (``AM2301``, ``SHT3X``, ``BME280``...).
        timezone: the device's local zone (Tasmota's ``Time`` has no offset).
        temp_unit: ``C`` or ``F`` (SetOption8).
    """

    topic: str
    sensor: str = "AM2301"
    timezone: str = "Asia/Shanghai"
    temp_unit: Literal["C", "F"] = "C"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.topic

    def payloads(self, ts_ms: int, values: Mapping[str, float]) -> list[Message]:
        temperature = _need(values, "temperature", self.topic)
        if self.temp_unit == "F":
            temperature = temperature * 9 / 5 + 32
        block: dict[str, float] = {"Temperature": round(temperature, 1),
                                   "Humidity": round(_need(values, "humidity", self.topic), 1)}
        if self.sensor == "SHT3X":
            dew_point = climate.dew_point(_need(values, "temperature", self.topic), block["Humidity"])
            block["DewPoint"] = round(dew_point or 0.0, 1)
        local = from_ms(ts_ms).astimezone(ZoneInfo(self.timezone))
        body = {"Time": local.replace(tzinfo=None).isoformat(timespec="seconds"), self.sensor: block,
                "TempUnit": self.temp_unit}
        return [(f"tele/{self.topic}/SENSOR", _json(body), False)]

    def availability(self, online: bool) -> list[Message]:
        return [(f"tele/{self.topic}/LWT", b"Online" if online else b"Offline", True)]


@dataclass
class ShellyGen1HT(MqttDevice):
    """A Shelly H&T (Gen1): plain numbers on ``shellies/<device_id>/sensor/<quantity>``.

    Args:
        device_id: e.g. ``shellyht-A1B2C3``.
        battery: battery percentage reported.
    """

    device_id: str
    battery: int = 92

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.device_id

    def payloads(self, ts_ms: int, values: Mapping[str, float]) -> list[Message]:
        base = f"shellies/{self.device_id}/sensor"
        return [
            (f"{base}/temperature", f"{_need(values, 'temperature', self.device_id):.2f}".encode(), False),
            (f"{base}/humidity", f"{_need(values, 'humidity', self.device_id):.1f}".encode(), False),
            (f"{base}/battery", str(self.battery).encode(), False),
        ]

    def availability(self, online: bool) -> list[Message]:
        return [(f"shellies/{self.device_id}/online", b"true" if online else b"false", True)]


@dataclass
class ShellyGen2HT(MqttDevice):
    """A Shelly Plus H&T (Gen2+): JSON-RPC ``NotifyStatus`` on ``<prefix>/events/rpc``.

    Args:
        prefix: the device's MQTT topic prefix.
        src: the device id in ``src`` (``shellyplusht-<mac>``).
        battery: battery percentage reported.
    """

    prefix: str
    src: str
    battery: int = 88

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.prefix

    def payloads(self, ts_ms: int, values: Mapping[str, float]) -> list[Message]:
        celsius = round(_need(values, "temperature", self.prefix), 1)
        params = {
            "ts": round(ts_ms / 1000, 2),
            "temperature:0": {"id": 0, "tC": celsius, "tF": round(celsius * 9 / 5 + 32, 1)},
            "humidity:0": {"id": 0, "rh": round(_need(values, "humidity", self.prefix), 1)},
            "devicepower:0": {"id": 0, "battery": {"V": round(3.6 + self.battery / 100 * 2.4, 2),
                                                   "percent": self.battery}, "external": {"present": False}},
        }
        body = {"src": self.src, "dst": f"{self.prefix}/events", "method": "NotifyStatus", "params": params}
        return [(f"{self.prefix}/events/rpc", _json(body), False)]

    def availability(self, online: bool) -> list[Message]:
        return [(f"{self.prefix}/online", b"true" if online else b"false", True)]


@dataclass
class EsphomeNode(MqttDevice):
    """An ESPHome node in MQTT mode: one plain-text state topic per sensor.

    Args:
        prefix: the node's topic prefix.
        sensors: ESPHome sensor name -> archmon quantity; binary quantities (door, smoke, leak) become
            ``binary_sensor`` topics with ``ON``/``OFF`` (door ``ON`` = open).
    """

    prefix: str
    sensors: dict[str, str] = field(default_factory=lambda: {"temperature": "temperature", "humidity": "humidity"})

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.prefix

    def payloads(self, ts_ms: int, values: Mapping[str, float]) -> list[Message]:
        messages: list[Message] = []
        for sensor, quantity in self.sensors.items():
            value = _need(values, quantity, self.prefix)
            if quantity in BINARY_QUANTITIES:
                text, component = ("ON" if value else "OFF"), "binary_sensor"
            else:
                text, component = f"{value:.1f}", "sensor"
            messages.append((f"{self.prefix}/{component}/{sensor}/state", text.encode(), False))
        return messages

    def availability(self, online: bool) -> list[Message]:
        return [(f"{self.prefix}/status", b"online" if online else b"offline", True)]


@dataclass
class FleetCounters:
    """What a fleet did: messages handed to paho, acknowledged by the broker (PUBACK), refused, rounds."""

    sent: int = 0
    acknowledged: int = 0
    refused: int = 0
    rounds: int = 0
    connects: int = 0


class SimulatorFleet:
    """Publishes a set of simulated devices to one broker over one paho client (QoS 1).

    Building a fleet touches no network; :meth:`start` connects in the background (paho reconnects on
    its own while the broker is down; messages queue up to ``max_queued`` and are refused beyond).

    Args:
        host: broker host.
        port: broker port.
        devices: the devices to publish.
        interval_s: seconds between rounds.
        room: values model for devices without their own entry in ``rooms``.
        rooms: device name -> values model.
        client_id: MQTT client id.
        clock: source of the devices' time (UTC epoch ms), e.g. a ``SimClock`` for a sped-up simulation.
        max_queued: most messages kept while disconnected.
        reconnect_delay_s: paho's first and longest wait between reconnection attempts.
    """

    def __init__(
        self, host: str, port: int, devices: Sequence[MqttDevice], *, interval_s: float = 10.0,
        room: RoomModel | None = None, rooms: Mapping[str, RoomModel] | None = None,
        client_id: str = "archmon-simulator", clock: Callable[[], int] = now_ms, max_queued: int = 10_000,
        reconnect_delay_s: tuple[float, float] = (1.0, 5.0),
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"SimulatorFleet.interval_s must be > 0, got {interval_s!r}")
        self.host, self.port, self.interval_s = host, port, interval_s
        self.devices = list(devices)
        self._room = room or RoomModel()
        self._rooms = dict(rooms or {})
        self._clock = clock
        self.counters = FleetCounters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self._client.max_queued_messages_set(max_queued)
        self._client.reconnect_delay_set(*reconnect_delay_s)  # type: ignore[arg-type]  # floats work
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until the client is connected; False on timeout."""
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        """Connect in the background and start publishing a round every ``interval_s``."""
        if self._thread is not None:
            raise RuntimeError("SimulatorFleet.start: already started")
        self._stop.clear()
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="simulator-fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop publishing, mark every device offline (if connected), disconnect and join the threads."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._connected.is_set():
            infos = [self._publish(message) for device in self.devices for message in device.availability(False)]
            deadline = time.monotonic() + timeout_s
            for info in (i for i in infos if i is not None and i.rc == MQTTErrorCode.MQTT_ERR_SUCCESS):
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        self._client.disconnect()
        stop_network_loop(self._client)

    def publish_once(self, ts_ms: int | None = None) -> int:
        """Publish one round: every device's messages for the values at ``ts_ms`` (default: the clock).

        Returns:
            How many messages paho accepted (sent now or queued until reconnection).
        """
        when = self._clock() if ts_ms is None else ts_ms
        accepted = 0
        for device in self.devices:
            values = self._rooms.get(device.name, self._room).values(when)
            for message in device.payloads(when, values):
                accepted += self._publish(message) is not None
        with self._lock:
            self.counters.rounds += 1
        return accepted

    def _publish(self, message: Message) -> mqtt.MQTTMessageInfo | None:
        topic, payload, retain = message
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self.counters.sent += 1
                return info
            self.counters.refused += 1
        logger.warning("simulator fleet: paho refused %s (%s)", topic, mqtt.error_string(info.rc))
        return None

    def _run(self) -> None:
        next_round = time.monotonic()
        while not self._stop.is_set():
            try:
                self.publish_once()
            except Exception:  # a bad device must not end the demo
                logger.exception("simulator fleet: a round failed")
            next_round += self.interval_s
            self._stop.wait(max(0.0, next_round - time.monotonic()))

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("simulator fleet: %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        with self._lock:
            self.counters.connects += 1
        for device in self.devices:
            for message in device.availability(True):
                self._publish(message)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            logger.info("simulator fleet: lost broker %s:%d (%s), reconnecting", self.host, self.port, reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.counters.acknowledged += 1
