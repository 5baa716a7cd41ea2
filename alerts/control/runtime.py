"""Putting climate control together from a configuration: the plans, one link per broker and per serial
port, the records and the controller (see :class:`ControlRuntime`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.control.controller import ClimateController, MaintenanceSource
from alerts.control.driver import Link
from alerts.control.modbus_link import ModbusLink, SerialLine
from alerts.control.mqtt_link import MqttLink, control_client_id
from alerts.control.plan import ActuatorPlan, load_plans
from alerts.control.records import ControlRecords
from archmon.config import Config
from archmon.timeutil import now_ms
from collector.mqtt_config import MqttSourceConfig
from collector.sources import configs_of
from devices.actuators import Availability, ModbusCoil, MqttSwitch, SwitchReport

__all__ = ["ControlRuntime", "build_runtime"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ControlRuntime:
    """The controller and the links it talks through.

    Attributes:
        controller: the loops, drivers and records.
        mqtt: one link per broker; modbus: one per serial port.
    """

    controller: ClimateController
    mqtt: list[MqttLink] = field(default_factory=list)
    modbus: list[ModbusLink] = field(default_factory=list)

    def start(self, *, wait_s: float = 10.0) -> None:
        """Connect the links, wait (at most ``wait_s``) until every broker link has subscribed, so retained
        states are read back, then ask every device for its state and wait (within the same bound) for the
        answers, so the first decisions know what the devices are doing."""
        for link in self.mqtt:
            link.start()
        deadline = time.monotonic() + wait_s
        for link in self.mqtt:
            if not link.subscribed.wait(max(0.0, deadline - time.monotonic())):
                log.warning("control: broker of source %s not reached within %.0f s; devices on it are asked for "
                            "their state once it is", link.source.id, wait_s)
        self.controller.start()
        self.controller.wait_idle(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Disconnect every link (devices keep their state; those with an auto-off switch themselves off)."""
        for link in self.mqtt:
            link.stop()
        for serial_link in self.modbus:
            serial_link.stop()


def build_runtime(config: Config, *, records: ControlRecords | None, clock: Callable[[], int] = now_ms,
                  maintenance: MaintenanceSource | None = None,
                  plans: list[ActuatorPlan] | None = None) -> ControlRuntime:
    """Build (without connecting) everything the configuration's ``[[actuators]]`` need.

    Raises:
        ConfigError: a problem of the actuators or of their MQTT sources (an unreadable password...).
    """
    plans = load_plans(config) if plans is None else plans
    holder: list[ClimateController] = []

    def deliver(actuator: str, message: SwitchReport | Availability) -> None:
        if holder:
            holder[0].on_device(actuator, message)

    links: dict[str, Link] = {}
    runtime_mqtt: list[MqttLink] = []
    runtime_modbus: list[ModbusLink] = []
    sources = {source.id: source for source in configs_of(config, MqttSourceConfig)} if any(
        plan.config.kind != "modbus" for plan in plans) else {}
    by_source: dict[str, dict[str, MqttSwitch]] = {}
    by_port: dict[str, dict[str, ModbusCoil]] = {}
    lines: dict[str, SerialLine] = {}
    for plan in plans:
        table = plan.config
        if isinstance(plan.switch, ModbusCoil):
            assert table.device is not None
            by_port.setdefault(table.device, {})[plan.id] = plan.switch
            lines.setdefault(table.device, SerialLine(table.device, table.baudrate, table.parity, table.bytesize,
                                                      table.stopbits, table.timeout_s))
        else:
            assert table.source is not None
            by_source.setdefault(table.source, {})[plan.id] = plan.switch
    auto_off = {plan.id: plan.config.auto_off_s for plan in plans}
    for source_id, switches in by_source.items():
        source = sources[source_id]
        link = MqttLink(source, switches, deliver, client_id=control_client_id(config.site.name, source_id),
                        password=source.password(), auto_off_s={k: auto_off[k] for k in switches})
        runtime_mqtt.append(link)
        links.update(dict.fromkeys(switches, link))
    for device, coils in by_port.items():
        serial_link = ModbusLink(lines[device], coils, deliver)
        runtime_modbus.append(serial_link)
        links.update(dict.fromkeys(coils, serial_link))
    controller = ClimateController(plans, links, records=records, clock=clock, maintenance=maintenance)
    holder.append(controller)
    return ControlRuntime(controller, runtime_mqtt, runtime_modbus)
