"""Switches over MQTT: how to command a smart plug or relay and how to read back the state it reports.

One class per ecosystem, each a frozen description of one switch (its topics), with the same methods:
``command(on)`` the messages that switch it, ``query()`` those that make it report its state (empty when
the device cannot be asked), ``setup()`` settings sent once per connection, ``filters()`` what to
subscribe to, and ``parse(topic, payload)`` the state or availability a message reports (None when it
says nothing about this switch). Nothing here touches the network.

- **Zigbee2MQTT**: ``<topic>/set`` ``{"state":"ON"}``; the state comes back in the device's own state
  message on ``<topic>`` (``"state":"ON"``); ``<topic>/get`` ``{"state":""}`` asks for it;
  ``<topic>/availability``. A device-side auto-off rides on the ON command as ``on_time`` (seconds;
  Zigbee "on with timed off", supported by some plug firmwares only).
- **Tasmota**: ``cmnd/<topic>/POWER<n>`` ``ON``/``OFF`` (empty payload: query); answers on
  ``stat/<topic>/RESULT`` ``{"POWER":"ON"}`` and ``stat/<topic>/POWER`` ``ON``, periodically in
  ``tele/<topic>/STATE``; ``tele/<topic>/LWT`` ``Online``/``Offline``. A single-relay device answers
  ``POWER`` also when asked as ``POWER1``. Auto-off: ``PulseTime<n>`` (a device setting: 1..111 tenths of a
  second, 112..64900 seconds + 100); archmon assumes a repeated ``POWER ON`` restarts it (unconfirmed:
  check it on your firmware, see docs/control.md).
- **Shelly Gen2+**: JSON-RPC on ``<prefix>/rpc``: ``Switch.Set`` ``{"id":0,"on":true}`` (with
  ``toggle_after`` seconds: the device flips back by itself), ``Switch.GetStatus``; answers on
  ``<src>/rpc``; state changes in ``NotifyStatus`` on ``<prefix>/events/rpc`` (``switch:0.output``) and on
  ``<prefix>/status/switch:0`` when generic status updates are on; ``<prefix>/online`` ``true``/``false``.
- **ESPHome** (MQTT mode): ``<prefix>/switch/<name>/command`` ``ON``/``OFF``; state on
  ``<prefix>/switch/<name>/state`` (retained by default, so it is read back on subscribing: there is no
  query command); ``<prefix>/status`` ``online``/``offline``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from devices.actuators._types import AutoOff, Availability, Publish, SwitchReport, parse_on_off

__all__ = ["EsphomeSwitch", "MqttSwitch", "ShellySwitch", "TasmotaSwitch", "Zigbee2MqttSwitch"]

TASMOTA_PULSE_MAX_S = 64_800  # PulseTime 64900 = 64,800 s


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return ""


class MqttSwitch:
    """What every MQTT switch format offers (see the module docstring)."""

    kind: ClassVar[str] = ""
    auto_off: ClassVar[AutoOff] = "none"
    queryable: ClassVar[bool] = True

    def command(self, on: bool, *, auto_off_s: int | None = None) -> list[Publish]:
        """The messages that switch the output on or off.

        Args:
            on: the wanted state.
            auto_off_s: for ``per_command`` devices, the device switches off by itself after so many
                seconds unless commanded ON again (ignored otherwise and for OFF).
        """
        raise NotImplementedError

    def query(self) -> list[Publish]:
        """Messages that make the device report its state (empty: it cannot be asked)."""
        return []

    def setup(self, *, auto_off_s: int | None = None) -> list[Publish]:
        """Settings sent after every (re)connection (Tasmota's ``PulseTime``); empty for most."""
        return []

    def filters(self) -> list[str]:
        """Topic filters to subscribe to for this switch's state and availability."""
        raise NotImplementedError

    def parse(self, topic: str, payload: bytes) -> SwitchReport | Availability | None:
        """What a message on one of :meth:`filters` says about this switch (None: nothing)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Zigbee2MqttSwitch(MqttSwitch):
    """A Zigbee plug or relay through Zigbee2MQTT.

    Attributes:
        topic: the device topic, base included (``zigbee2mqtt/plug-dehum1``).
        state_property: the state key (``state``; ``state_l1``... for multi-gang devices).
    """

    kind: ClassVar[str] = "zigbee2mqtt"
    auto_off: ClassVar[AutoOff] = "per_command"

    topic: str
    state_property: str = "state"

    def command(self, on: bool, *, auto_off_s: int | None = None) -> list[Publish]:
        body: dict[str, Any] = {self.state_property: "ON" if on else "OFF"}
        if on and auto_off_s:
            body["on_time"] = int(auto_off_s)
        return [Publish(f"{self.topic}/set", json.dumps(body).encode())]

    def query(self) -> list[Publish]:
        return [Publish(f"{self.topic}/get", json.dumps({self.state_property: ""}).encode())]

    def filters(self) -> list[str]:
        return [self.topic, f"{self.topic}/availability"]

    def parse(self, topic: str, payload: bytes) -> SwitchReport | Availability | None:
        if topic == f"{self.topic}/availability":
            data = _json(payload)
            state = data.get("state") if isinstance(data, dict) else _text(payload)
            if state in ("online", "offline"):
                return Availability(state == "online", "availability")
            return None
        if topic != self.topic:
            return None
        data = _json(payload)
        if not isinstance(data, dict):
            return None
        value = data.get(self.state_property)
        on = parse_on_off(value) if isinstance(value, str) else None
        return None if on is None else SwitchReport(on, "state")


@dataclass(frozen=True, slots=True)
class TasmotaSwitch(MqttSwitch):
    """A Tasmota plug or relay.

    Attributes:
        topic: the device's ``%topic%`` (``plug-dehum2``).
        relay: 0 for ``POWER`` (single relay), 1..32 for ``POWER<n>``.
        full_topic: the device's FullTopic pattern (default ``%prefix%/%topic%/``).
    """

    kind: ClassVar[str] = "tasmota"
    auto_off: ClassVar[AutoOff] = "device_setting"

    topic: str
    relay: int = 0
    full_topic: str = "%prefix%/%topic%/"

    def _at(self, prefix: str, leaf: str) -> str:
        base = self.full_topic.replace("%prefix%", prefix).replace("%topic%", self.topic)
        return base + leaf if base.endswith("/") else f"{base}/{leaf}"

    @property
    def _power(self) -> str:
        return f"POWER{self.relay}" if self.relay else "POWER"

    def _power_keys(self) -> tuple[str, ...]:
        # a single-relay device answers POWER when asked POWER1
        return ("POWER", "POWER1") if self.relay <= 1 else (self._power,)

    def command(self, on: bool, *, auto_off_s: int | None = None) -> list[Publish]:
        return [Publish(self._at("cmnd", self._power), b"ON" if on else b"OFF")]

    def query(self) -> list[Publish]:
        return [Publish(self._at("cmnd", self._power), b"")]

    def setup(self, *, auto_off_s: int | None = None) -> list[Publish]:
        """``PulseTime<n>``: the device switches off ``auto_off_s`` after every ON (0 disables it)."""
        if auto_off_s is None:
            return []
        return [Publish(self._at("cmnd", f"PulseTime{self.relay or 1}"), str(pulse_time(auto_off_s)).encode())]

    def filters(self) -> list[str]:
        return [self._at("stat", key) for key in self._power_keys()] + [
            self._at("stat", "RESULT"), self._at("tele", "STATE"), self._at("tele", "LWT")]

    def parse(self, topic: str, payload: bytes) -> SwitchReport | Availability | None:
        if topic == self._at("tele", "LWT"):
            text = _text(payload).lower()
            return Availability(text == "online", "LWT") if text in ("online", "offline") else None
        for key in self._power_keys():
            if topic == self._at("stat", key):
                on = parse_on_off(_text(payload))
                return None if on is None else SwitchReport(on, f"stat/{key}")
        if topic in (self._at("stat", "RESULT"), self._at("tele", "STATE")):
            data = _json(payload)
            if not isinstance(data, dict):
                return None
            for key in self._power_keys():
                value = data.get(key)
                if isinstance(value, str) and (on := parse_on_off(value)) is not None:
                    return SwitchReport(on, "RESULT" if topic.endswith("RESULT") else "STATE")
        return None


def pulse_time(seconds: int) -> int:
    """Tasmota's ``PulseTime`` value for an auto-off after ``seconds`` (0: off; 1..11 s in tenths).

    Raises:
        ValueError: more than 64,800 s (the largest PulseTime) or negative.
    """
    if seconds < 0 or seconds > TASMOTA_PULSE_MAX_S:
        raise ValueError(f"Tasmota PulseTime can be 0..{TASMOTA_PULSE_MAX_S} s, got {seconds}")
    if seconds == 0:
        return 0
    return seconds * 10 if seconds <= 11 else seconds + 100


@dataclass(frozen=True, slots=True)
class ShellySwitch(MqttSwitch):
    """A Shelly Gen2+ switch (Plus 1, Plus Plug S...) over MQTT RPC.

    Attributes:
        topic: the device's MQTT prefix (default on the device: its id, ``shellyplusplugs-a8032ab1c2d3``).
        switch_id: the ``switch:<id>`` component.
        device_id: the id the device puts in ``src`` of its answers (default: ``topic``).
        rpc_src: archmon's ``src`` in requests: the device answers on ``<rpc_src>/rpc``.
    """

    kind: ClassVar[str] = "shelly"
    auto_off: ClassVar[AutoOff] = "per_command"

    topic: str
    switch_id: int = 0
    device_id: str = ""
    rpc_src: str = "archmon"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), compare=False, repr=False)

    def _rpc(self, method: str, params: dict[str, Any]) -> Publish:
        body = {"id": next(self._ids), "src": self.rpc_src, "method": method, "params": params}
        return Publish(f"{self.topic}/rpc", json.dumps(body).encode())

    def command(self, on: bool, *, auto_off_s: int | None = None) -> list[Publish]:
        params: dict[str, Any] = {"id": self.switch_id, "on": on}
        if on and auto_off_s:
            params["toggle_after"] = int(auto_off_s)
        return [self._rpc("Switch.Set", params)]

    def query(self) -> list[Publish]:
        return [self._rpc("Switch.GetStatus", {"id": self.switch_id})]

    def filters(self) -> list[str]:
        return [f"{self.topic}/events/rpc", f"{self.topic}/status/switch:{self.switch_id}", f"{self.rpc_src}/rpc",
                f"{self.topic}/online"]

    def parse(self, topic: str, payload: bytes) -> SwitchReport | Availability | None:
        if topic == f"{self.topic}/online":
            on = parse_on_off(_text(payload))
            return None if on is None else Availability(on, "online")
        data = _json(payload)
        if not isinstance(data, dict):
            return None
        if topic == f"{self.topic}/status/switch:{self.switch_id}":
            return _output(data, "status")
        if topic == f"{self.topic}/events/rpc":
            params = data.get("params")
            if data.get("method") in ("NotifyStatus", "NotifyFullStatus") and isinstance(params, dict):
                component = params.get(f"switch:{self.switch_id}")
                return _output(component, data["method"]) if isinstance(component, dict) else None
            return None
        if topic == f"{self.rpc_src}/rpc" and data.get("src") == (self.device_id or self.topic):
            result = data.get("result")
            if isinstance(result, dict) and result.get("id", self.switch_id) == self.switch_id:
                return _output(result, "GetStatus")
        return None


def _output(component: dict[str, Any], via: str) -> SwitchReport | None:
    value = component.get("output")
    return SwitchReport(value, via) if isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class EsphomeSwitch(MqttSwitch):
    """An ESPHome ``switch`` in MQTT mode.

    Attributes:
        topic: the node's topic prefix (``esphome-dehum3``; ESPHome's default is the node name).
        switch: the switch's object id (its name in snake case, ``relay``).
    """

    kind: ClassVar[str] = "esphome"
    queryable: ClassVar[bool] = False

    topic: str
    switch: str = "relay"

    def command(self, on: bool, *, auto_off_s: int | None = None) -> list[Publish]:
        return [Publish(f"{self.topic}/switch/{self.switch}/command", b"ON" if on else b"OFF")]

    def filters(self) -> list[str]:
        return [f"{self.topic}/switch/{self.switch}/state", f"{self.topic}/status"]

    def parse(self, topic: str, payload: bytes) -> SwitchReport | Availability | None:
        if topic == f"{self.topic}/status":
            text = _text(payload).lower()
            return Availability(text == "online", "status") if text in ("online", "offline") else None
        if topic == f"{self.topic}/switch/{self.switch}/state":
            on = parse_on_off(_text(payload))
            return None if on is None else SwitchReport(on, "state")
        return None
