"""Climate control: drive a room's dehumidifiers, humidifiers and air conditioners to keep it in its band,
within limits that protect the equipment, with every switch on the record (issue 12; ``docs/control.md``).

- :mod:`~alerts.control.settings`, :mod:`~alerts.control.plan`: the ``[[actuators]]`` tables, checked
  against rooms, bands, sensors and sources;
- :mod:`~alerts.control.loop`: one device's decisions, pure and clock-injected;
- :mod:`~alerts.control.driver`: commands confirmed by the device's report, repeats, "not responding";
- :mod:`~alerts.control.mqtt_link`, :mod:`~alerts.control.modbus_link`: the wires (MQTT broker, RS-485 port);
- :mod:`~alerts.control.records`: overrides, switch log, audit trail;
- :mod:`~alerts.control.controller`: all of it, driven by ``tick``;
- :mod:`~alerts.control.runtime`: built from a configuration;
- :mod:`~alerts.control.reconfigure`: a reload's changes (a removed device put in its safe state first);
- :mod:`~alerts.control.summary`: a period's run hours, switches, overrides, failures per device.

The package sits above the rest of ``alerts`` (it reads profiles, stale settings, maintenance windows and
writes the audit chain); nothing else in ``alerts`` imports it: the ``actuator`` rule reads the
controller's health through a protocol it is attached to.
"""

from alerts.control.controller import ActuatorHealth, ActuatorStatus, ClimateController
from alerts.control.driver import ActuatorDriver, Cause, DriverEvent, DriverTiming
from alerts.control.loop import REASONS, ControlLoop, Decision, LoopInputs, LoopSettings, OverrideView
from alerts.control.plan import ActuatorPlan, control_problems, default_setpoints, load_plans
from alerts.control.records import ControlRecords
from alerts.control.runtime import ControlRuntime, build_runtime
from alerts.control.settings import ActuatorConfig
from alerts.control.summary import DeviceSummary, device_summaries

__all__ = [
    "REASONS",
    "ActuatorConfig",
    "ActuatorDriver",
    "ActuatorHealth",
    "ActuatorPlan",
    "ActuatorStatus",
    "Cause",
    "ClimateController",
    "ControlLoop",
    "ControlRecords",
    "ControlRuntime",
    "Decision",
    "DeviceSummary",
    "DriverEvent",
    "DriverTiming",
    "LoopInputs",
    "LoopSettings",
    "OverrideView",
    "build_runtime",
    "control_problems",
    "default_setpoints",
    "device_summaries",
    "load_plans",
]
