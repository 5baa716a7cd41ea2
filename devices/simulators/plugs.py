"""Simulated smart plugs on a real MQTT broker: Zigbee2MQTT and Tasmota plugs that obey and report.

Each plug keeps its relay state and answers the way the real firmware does (written from the projects'
documentation, independently of ``devices.actuators`` so that a mistake there is not copied here):

- :class:`Zigbee2MqttPlug`: ``<base>/<name>/set`` ``{"state": "ON"|"OFF"|"TOGGLE", "on_time": s}`` and
  ``<base>/<name>/get``; publishes ``<base>/<name>`` ``{"state": "ON", "power": W, "linkquality": n}``
  after every change or question, and ``<base>/<name>/availability`` ``{"state": "online"}`` (retained).
  ``on_time`` switches it off after so many seconds (Zigbee "on with timed off").
- :class:`TasmotaPlug`: ``cmnd/<topic>/POWER`` (or ``POWER1``) ``ON``/``OFF``/``TOGGLE``/empty (query),
  ``cmnd/<topic>/PulseTime1 <n>``; answers ``stat/<topic>/RESULT`` ``{"POWER": "ON"}`` and
  ``stat/<topic>/POWER`` ``ON``; ``tele/<topic>/STATE`` every ``tele_period_s``; ``tele/<topic>/LWT``
  ``Online`` (retained). PulseTime switches it off after the pulse, restarted by every ON.

- :class:`ShellyPlug` (Gen2+): JSON-RPC requests on ``<prefix>/rpc`` (``Switch.Set`` with ``toggle_after``,
  ``Switch.GetStatus``), answered on ``<src>/rpc``; ``NotifyStatus`` on ``<prefix>/events/rpc`` after a change.
- :class:`EsphomeNode`: ``<prefix>/switch/<name>/command``; the state on ``<prefix>/switch/<name>/state``,
  retained (ESPHome's default), and ``<prefix>/status`` ``online`` (retained).

A plug can stop answering (:meth:`SimulatedPlug.stop_answering`: commands are ignored, nothing is
published, as a plug whose Wi-Fi or Zigbee link is gone) and its switches are recorded (``history``), so a
test can check minimum on/off times. Timed switch-offs run in simulated time: :meth:`PlugFleet.tick`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from archmon.paho import stop_network_loop

__all__ = ["EsphomeNode", "PlugFleet", "ShellyPlug", "SimulatedPlug", "Switch", "TasmotaPlug", "Zigbee2MqttPlug"]

log = logging.getLogger(__name__)

Outgoing = tuple[str, bytes, bool]  # topic, payload, retain


@dataclass(frozen=True, slots=True)
class Switch:
    """One change of a plug's relay: when, to what, and why (``command``, ``timer``)."""

    ts_ms: int
    on: bool
    why: str


@dataclass
class SimulatedPlug:
    """What every simulated plug has: a relay, a timed switch-off, a record of its switches.

    Attributes:
        power_w: the load's power while on (reported by plugs that meter).
        answering: False while the plug ignores everything (a lost link).
        commands: commands received (also while not answering).
        last_on_ms: when the newest ON command was obeyed (a timed switch-off counts from it).
    """

    clock: Callable[[], int]
    power_w: float = 450.0
    on: bool = False
    answering: bool = True
    commands: int = 0
    history: list[Switch] = field(default_factory=list)
    off_at_ms: int | None = None
    last_on_ms: int | None = None

    def stop_answering(self) -> None:
        """Ignore every command and publish nothing (the relay stays as it is)."""
        self.answering = False

    def answer_again(self) -> None:
        """Answer commands again."""
        self.answering = True

    def _set(self, on: bool, why: str) -> None:
        if on and why == "command":
            self.last_on_ms = self.clock()
        if on != self.on:
            self.history.append(Switch(self.clock(), on, why))
        self.on = on
        if not on:
            self.off_at_ms = None

    def expire(self, now_ms: int) -> bool:
        """Run the timed switch-off if due; whether the relay changed."""
        if self.on and self.off_at_ms is not None and now_ms >= self.off_at_ms:
            self._set(False, "timer")
            return True
        return False

    def filters(self) -> list[str]:
        """What the plug subscribes to."""
        raise NotImplementedError

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        """React to a message on one of :meth:`filters`; the messages to publish in answer."""
        raise NotImplementedError

    def state_messages(self) -> list[Outgoing]:
        """The messages that report the current state."""
        raise NotImplementedError

    def birth(self) -> list[Outgoing]:
        """What the plug publishes when it (re)connects."""
        return self.state_messages()


@dataclass
class Zigbee2MqttPlug(SimulatedPlug):
    """A Zigbee plug behind Zigbee2MQTT (see the module docstring)."""

    topic: str = "zigbee2mqtt/plug"
    retain_state: bool = False

    def filters(self) -> list[str]:
        return [f"{self.topic}/set", f"{self.topic}/get"]

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        self.commands += 1
        if not self.answering:
            return []
        try:
            body = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = payload.decode("utf-8", "replace").strip()  # Zigbee2MQTT also takes a bare ON/OFF
        if topic.endswith("/set"):
            state = body.get("state") if isinstance(body, dict) else body
            if isinstance(state, str) and state.upper() in ("ON", "OFF", "TOGGLE"):
                on = not self.on if state.upper() == "TOGGLE" else state.upper() == "ON"
                self._set(on, "command")
                on_time = body.get("on_time") if isinstance(body, dict) else None
                if on and isinstance(on_time, int | float) and on_time > 0:
                    self.off_at_ms = self.clock() + int(on_time * 1000)
                elif on:
                    self.off_at_ms = None
        return self.state_messages()

    def state_messages(self) -> list[Outgoing]:
        if not self.answering:
            return []
        body = {"state": "ON" if self.on else "OFF", "power": self.power_w if self.on else 0.0, "linkquality": 120}
        return [(self.topic, json.dumps(body).encode(), self.retain_state)]

    def birth(self) -> list[Outgoing]:
        return [(f"{self.topic}/availability", b'{"state":"online"}', True), *self.state_messages()]


@dataclass
class TasmotaPlug(SimulatedPlug):
    """A Tasmota plug with one relay (see the module docstring)."""

    topic: str = "plug"
    pulse_time: int = 0
    tele_period_s: int = 300
    _next_tele_ms: int | None = None

    def filters(self) -> list[str]:
        return [f"cmnd/{self.topic}/POWER", f"cmnd/{self.topic}/POWER1", f"cmnd/{self.topic}/PulseTime1",
                f"cmnd/{self.topic}/PulseTime"]

    def _pulse_ms(self) -> int:
        if self.pulse_time <= 0:
            return 0
        return self.pulse_time * 100 if self.pulse_time <= 111 else (self.pulse_time - 100) * 1000

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        self.commands += 1
        if not self.answering:
            return []
        text = payload.decode("utf-8", "replace").strip().upper()
        leaf = topic.rsplit("/", 1)[1]
        if leaf.upper().startswith("PULSETIME"):
            if text:
                self.pulse_time = int(text)
            body = {"PulseTime1": {"Set": self.pulse_time, "Remaining": 0}}
            return [(f"stat/{self.topic}/RESULT", json.dumps(body).encode(), False)]
        if text in ("ON", "1", "OFF", "0", "TOGGLE", "2"):
            on = not self.on if text in ("TOGGLE", "2") else text in ("ON", "1")
            self._set(on, "command")
            if on and self._pulse_ms():
                self.off_at_ms = self.clock() + self._pulse_ms()  # every ON restarts the pulse
        return self.state_messages()

    def state_messages(self) -> list[Outgoing]:
        if not self.answering:
            return []
        word = b"ON" if self.on else b"OFF"
        return [(f"stat/{self.topic}/RESULT", b'{"POWER":"' + word + b'"}', False),
                (f"stat/{self.topic}/POWER", word, False)]

    def telemetry(self, now_ms: int) -> list[Outgoing]:
        """``tele/<topic>/STATE`` when its period is due."""
        if not self.answering or (self._next_tele_ms is not None and now_ms < self._next_tele_ms):
            return []
        self._next_tele_ms = now_ms + self.tele_period_s * 1000
        body = {"Time": "", "POWER": "ON" if self.on else "OFF"}
        return [(f"tele/{self.topic}/STATE", json.dumps(body).encode(), False)]

    def birth(self) -> list[Outgoing]:
        return [(f"tele/{self.topic}/LWT", b"Online", True), *self.state_messages()]


@dataclass
class ShellyPlug(SimulatedPlug):
    """A Shelly Gen2+ plug with ``switch:0`` (see the module docstring)."""

    topic: str = "shellyplusplugs-000000000000"

    def filters(self) -> list[str]:
        return [f"{self.topic}/rpc"]

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        self.commands += 1
        if not self.answering:
            return []
        try:
            request = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return []
        if not isinstance(request, dict) or not isinstance(request.get("src"), str):
            return []
        params = request.get("params") if isinstance(request.get("params"), dict) else {}
        method, was_on = request.get("method"), self.on
        if method == "Switch.Set" and isinstance(params.get("on"), bool):
            self._set(params["on"], "command")
            flip = params.get("toggle_after")
            self.off_at_ms = self.clock() + int(flip * 1000) if self.on and isinstance(flip, int | float) else None
            result: dict[str, object] = {"was_on": was_on}
        elif method == "Switch.GetStatus":
            result = {"id": 0, "source": "init", "output": self.on, "apower": self.power_w if self.on else 0.0}
        else:
            error = {"id": request.get("id"), "src": self.topic, "dst": request["src"],
                     "error": {"code": 404, "message": f"No handler for {method}"}}
            return [(f"{request['src']}/rpc", json.dumps(error).encode(), False)]
        answer = {"id": request.get("id"), "src": self.topic, "dst": request["src"], "result": result}
        out: list[Outgoing] = [(f"{request['src']}/rpc", json.dumps(answer).encode(), False)]
        if method == "Switch.Set" and was_on != self.on:
            out += self.state_messages()
        return out

    def state_messages(self) -> list[Outgoing]:
        if not self.answering:
            return []
        notify = {"src": self.topic, "dst": f"{self.topic}/events", "method": "NotifyStatus",
                  "params": {"ts": self.clock() / 1000, "switch:0": {"id": 0, "output": self.on}}}
        return [(f"{self.topic}/events/rpc", json.dumps(notify).encode(), False)]

    def birth(self) -> list[Outgoing]:
        return [(f"{self.topic}/online", b"true", True)]


@dataclass
class EsphomeNode(SimulatedPlug):
    """An ESPHome node with one ``switch`` (see the module docstring)."""

    topic: str = "esphome-node"
    switch: str = "relay"

    def filters(self) -> list[str]:
        return [f"{self.topic}/switch/{self.switch}/command"]

    def handle(self, topic: str, payload: bytes) -> list[Outgoing]:
        self.commands += 1
        if not self.answering:
            return []
        word = payload.decode("utf-8", "replace").strip().upper()
        if word in ("ON", "OFF", "TOGGLE"):
            self._set(not self.on if word == "TOGGLE" else word == "ON", "command")
        return self.state_messages()

    def state_messages(self) -> list[Outgoing]:
        if not self.answering:
            return []
        return [(f"{self.topic}/switch/{self.switch}/state", b"ON" if self.on else b"OFF", True)]

    def birth(self) -> list[Outgoing]:
        return [(f"{self.topic}/status", b"online", True), *self.state_messages()]


class PlugFleet:
    """Several simulated plugs on one paho connection.

    Args:
        host, port: the broker.
        plugs: the plugs.
        client_id: the fleet's MQTT client id.
    """

    def __init__(self, host: str, port: int, plugs: Iterable[SimulatedPlug], *, client_id: str = "sim-plugs") -> None:
        self.host, self.port = host, port
        self.plugs = list(plugs)
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._routes = {topic: plug for plug in self.plugs for topic in plug.filters()}
        self._sub_mid: int | None = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client

    def start(self, timeout: float = 10.0) -> PlugFleet:
        """Connect, subscribe, publish every plug's birth messages; wait until subscribed.

        Raises:
            RuntimeError: not subscribed within ``timeout``.
        """
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"simulated plugs not subscribed to {self.host}:{self.port} within {timeout} s")
        return self

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        stop_network_loop(self.client)

    def tick(self, now_ms: int) -> None:
        """Run timed switch-offs and periodic telemetry due at ``now_ms`` (simulated time)."""
        with self._lock:
            for plug in self.plugs:
                out = plug.state_messages() if plug.expire(now_ms) else []
                if isinstance(plug, TasmotaPlug):
                    out += plug.telemetry(now_ms)
                self._send(out)

    def announce(self, plug: SimulatedPlug) -> None:
        """Publish a plug's state now (as after its own restart)."""
        with self._lock:
            self._send(plug.birth())

    def _send(self, messages: list[Outgoing]) -> None:
        for topic, payload, retain in messages:
            self.client.publish(topic, payload, qos=1, retain=retain)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object = None) -> None:
        sock = client.socket()
        if isinstance(sock, socket.socket):  # answer at once, not after the broker's delayed ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _, self._sub_mid = client.subscribe([(topic, 1) for topic in sorted(self._routes)])
        with self._lock:
            for plug in self.plugs:
                self._send(plug.birth())

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: object,
                      properties: object = None) -> None:
        if mid == self._sub_mid:
            self.ready.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        plug = self._routes.get(message.topic)
        if plug is None:
            return
        with self._lock:
            self._send(plug.handle(message.topic, message.payload))
