"""The ``[[actuators]]`` tables: one per switched device (dehumidifier, humidifier, air conditioner).

Example (every option with its default: ``alerts/control/control.sample.toml``, explained in
``docs/control.md``)::

    [[actuators]]
    id = "dehum1"
    room = "A1"
    name_zh = "去湿机 1"
    kind = "zigbee2mqtt"          # zigbee2mqtt | tasmota | shelly | esphome | modbus
    source = "broker"             # the MQTT source whose broker the plug is on
    topic = "zigbee2mqtt/plug-dehum1"
    controls = "humidity_down"    # humidity_down | humidity_up | temperature_down | temperature_up
    start_at = 55                 # on above 55 %RH ...
    stop_at = 50                  # ... off below 50 %RH (inside the room's band: 45–60 for paper)

:class:`ActuatorConfig` checks each table on its own; :mod:`alerts.control.plan` checks it against the rest
of the configuration (room, band, sensors, source) and resolves defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from archmon.config import ID_PATTERN

__all__ = ["CONTROLS", "ActuatorConfig", "Aggregate", "Controls", "SafeState", "SwitchKind"]

Controls = Literal["humidity_down", "humidity_up", "temperature_down", "temperature_up"]
CONTROLS: tuple[Controls, ...] = ("humidity_down", "humidity_up", "temperature_down", "temperature_up")
SwitchKind = Literal["zigbee2mqtt", "tasmota", "shelly", "esphome", "modbus"]
Aggregate = Literal["mean", "worst"]
SafeState = Literal["off", "on"]

class ActuatorConfig(BaseModel):
    """One switched device and its control loop.

    Attributes:
        id: the actuator's id (``archmon control on ID``).
        room: the room it conditions; its profile's band bounds the set-points.
        name_zh, name_en: names for people.
        kind: how it is switched (see ``devices.actuators``).
        source: MQTT kinds: the ``[[sources]]`` MQTT source whose broker (address, TLS, login) is used.
        topic: MQTT kinds: the device topic (Zigbee2MQTT ``zigbee2mqtt/<name>``, Tasmota ``%topic%``, Shelly
            prefix, ESPHome node prefix).
        relay: Tasmota ``POWER<n>`` (0: ``POWER``), Shelly ``switch:<n>``.
        switch: ESPHome switch object id.
        state_property: Zigbee2MQTT state key (``state_l1``... on multi-gang devices).
        full_topic: Tasmota FullTopic.
        device_id: Shelly: the ``src`` of its answers (default: ``topic``).
        device, baudrate, parity, bytesize, stopbits, timeout_s: Modbus: the serial port of the relay module
            (not a port a Modbus source polls: one port has one master) and the reply timeout.
        address, coil, write_function: Modbus: module address, coil (0-based), FC 5 or 15.
        controls: what switching it on does.
        start_at, stop_at: the set-points: for ``*_down`` on above ``start_at``, off below ``stop_at``
            (``stop_at`` < ``start_at``); for ``*_up`` on below ``start_at``, off above ``stop_at``. Both
            inside the room's band; None: a third and two thirds into the band from the side it defends.
        sensors: the sensors followed (default: every enabled sensor of the room that measures the quantity).
        aggregate: ``worst`` (the highest for ``*_down``, the lowest for ``*_up``) or ``mean`` of the fresh ones.
        min_sensors: fewer fresh sensors than this is "stale": the loop goes to ``safe_state``.
        min_on_s, min_off_s: compressor protection: no switch sooner after the last one.
        max_run_s: longest continuous run; then off for ``rest_s``.
        allowed_hours: ``HH:MM-HH:MM`` ranges (site zone) when it may run (empty: always).
        safe_state: what the device is switched to when its sensors are stale.
        auto_off_s: a device-side fail-safe: the device switches itself off this long after the last ON
            (renewed while archmon runs) where the kind supports it (Zigbee ``on_time``, Shelly
            ``toggle_after``, Tasmota ``PulseTime``).
        confirm_timeout_s: how long a command waits for the device's report of the new state.
        retries: repeats of an unconfirmed command before "actuator not responding".
        poll_interval_s: how often the state is asked for while idle (Modbus reads the coil; MQTT kinds that
            can be asked send their query).
        probe_interval_s: while not responding, how often the state is asked for (no commands are sent
            until the device is heard again).
        effect_window_s, effect_min: while running, the followed value must improve by ``effect_min``
            within ``effect_window_s`` or a "no effect" alert is raised (0: not watched).
        enabled: False leaves the device alone (no commands, no alerts).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    room: str
    name_zh: str = ""
    name_en: str = ""
    kind: SwitchKind
    source: str | None = None
    topic: str | None = None
    relay: int = Field(default=0, ge=0, le=32)
    switch: str = Field(default="relay", min_length=1)
    state_property: str = Field(default="state", min_length=1)
    full_topic: str = "%prefix%/%topic%/"
    device_id: str = ""
    device: str | None = None
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    address: int | None = Field(default=None, ge=1, le=247)
    coil: int | None = Field(default=None, ge=0, le=65535)
    write_function: Literal[5, 15] = 5
    controls: Controls
    start_at: float | None = None
    stop_at: float | None = None
    sensors: list[str] = Field(default_factory=list)
    aggregate: Aggregate = "worst"
    min_sensors: int = Field(default=1, ge=1)
    min_on_s: float = Field(default=300.0, ge=0, le=86_400)
    min_off_s: float = Field(default=300.0, ge=0, le=86_400)
    max_run_s: float = Field(default=6 * 3600.0, gt=0, le=7 * 86_400)
    rest_s: float = Field(default=900.0, ge=0, le=86_400)
    allowed_hours: list[str] = Field(default_factory=list)
    safe_state: SafeState = "off"
    auto_off_s: int | None = Field(default=None, ge=60, le=64_800)
    confirm_timeout_s: float = Field(default=10.0, gt=0, le=600)
    retries: int = Field(default=2, ge=0, le=10)
    poll_interval_s: float = Field(default=300.0, gt=0, le=86_400)
    probe_interval_s: float = Field(default=600.0, gt=0, le=86_400)
    effect_window_s: float = Field(default=3600.0, ge=0, le=7 * 86_400)
    effect_min: float = Field(default=1.0, ge=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _order(self) -> ActuatorConfig:
        if self.start_at is not None and self.stop_at is not None:
            down = self.controls.endswith("_down")
            if down and not self.stop_at < self.start_at:
                raise ValueError(f"stop_at ({self.stop_at:g}) must be below start_at ({self.start_at:g}) for "
                                 f"{self.controls}: on above start_at, off below stop_at")
            if not down and not self.start_at < self.stop_at:
                raise ValueError(f"start_at ({self.start_at:g}) must be below stop_at ({self.stop_at:g}) for "
                                 f"{self.controls}: on below start_at, off above stop_at")
        return self

    @property
    def quantity(self) -> str:
        """``humidity`` or ``temperature``."""
        return self.controls.split("_")[0]

    @property
    def lowers(self) -> bool:
        """Whether running it lowers the quantity (``*_down``)."""
        return self.controls.endswith("_down")

    @property
    def label(self) -> str:
        """A name for people: the configured name (Chinese first), else the id."""
        return self.name_zh or self.name_en or self.id
