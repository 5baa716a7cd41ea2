"""``[[actuators]]`` checked against the rest of the configuration, through ``archmon check-config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.control import control_problems, default_setpoints, load_plans
from alerts.profiles import Band
from archmon.cli import main
from archmon.config import parse_config
from archmon.errors import ConfigError


def site(*actuators: dict[str, Any], sources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "site": {"name": "t"},
        "rooms": [{"id": "A1", "profile": "paper"}, {"id": "B2", "profile": "paper"}],
        "sources": sources or [{"kind": "mqtt", "id": "broker"}],
        "sensors": [
            {"id": "th1", "room": "A1", "source": "broker", "topic": "zigbee2mqtt/th1", "format": "zigbee2mqtt"},
            {"id": "th2", "room": "A1", "source": "broker", "topic": "zigbee2mqtt/th2", "format": "zigbee2mqtt"},
            {"id": "door1", "room": "A1", "kind": "door", "source": "broker", "topic": "zigbee2mqtt/d1",
             "format": "zigbee2mqtt"},
            {"id": "th9", "room": "B2", "source": "broker", "topic": "zigbee2mqtt/th9", "format": "zigbee2mqtt"},
        ],
        "actuators": list(actuators),
    }


DEHUM = {"id": "dehum1", "room": "A1", "kind": "zigbee2mqtt", "source": "broker", "topic": "zigbee2mqtt/plug1",
         "controls": "humidity_down"}


def problems(*actuators: dict[str, Any], **kw: Any) -> list[str]:
    return control_problems(parse_config(site(*actuators, **kw)))


def test_defaults_place_the_set_points_inside_the_paper_band() -> None:
    [plan] = load_plans(parse_config(site(DEHUM)))
    assert (plan.loop.start_at, plan.loop.stop_at) == (55.0, 50.0)
    assert [s.id for s in plan.sensors] == ["th1", "th2"]  # the room's humidity sensors, not the door
    assert plan.sensors[0].stale_after_ms == 900_000  # the stale rule's definition: 3 × 300 s
    assert default_setpoints(Band(low=45, high=60), lowers=False) == (47.5, 50.0)
    assert default_setpoints(Band(high=60), lowers=True) is None


@pytest.mark.parametrize(("change", "expected"), [
    ({"start_at": 62, "stop_at": 50}, "actuators[0] (dehum1).start_at: 62 %RH is above the paper band (45.0–60.0 %RH)"),
    ({"start_at": 55, "stop_at": 44}, "actuators[0] (dehum1).stop_at: 44 %RH is below the paper band"),
    ({"start_at": 50, "stop_at": 55}, "stop_at (55) must be below start_at (50) for humidity_down"),
    ({"sensors": ["th9"]}, "actuators[0] (dehum1).sensors[0]: sensor 'th9' is in room 'B2', not in 'A1'"),
    ({"sensors": ["door1"]}, "sensor 'door1' (door) does not measure humidity"),
    ({"sensors": ["nope"]}, "actuators[0] (dehum1).sensors[0]: unknown sensor 'nope'"),
    ({"room": "Z9"}, "actuators[0] (dehum1).room: unknown room 'Z9'"),
    ({"source": "bus"}, "unknown source 'bus'"),
    ({"topic": None}, "actuators[0] (dehum1).topic: required for a zigbee2mqtt actuator"),
    ({"kind": "esphome", "auto_off_s": 600}, "esphome switches have no device-side auto-off"),
    ({"allowed_hours": ["7-19"]}, "actuators[0] (dehum1).allowed_hours[0]: time range must look like"),
    ({"min_sensors": 3}, "actuators[0] (dehum1).min_sensors: 3 but it follows 2 sensor(s)"),
    ({"controls": "pressure_down"}, "actuators[0] (dehum1).controls: Input should be"),
    ({"retries": 99}, "actuators[0] (dehum1).retries: Input should be less than or equal to 10"),
    ({"colour": "red"}, "actuators[0] (dehum1).colour: unknown option"),
])
def test_each_problem_names_the_key_and_the_value(change: dict[str, Any], expected: str) -> None:
    found = problems({**DEHUM, **change})
    assert any(expected in line for line in found), found


def test_modbus_coils_need_their_own_port() -> None:
    coil = {"id": "dehum2", "room": "A1", "kind": "modbus", "device": "/dev/ttyUSB0", "address": 2, "coil": 0,
            "controls": "humidity_down"}
    polled = [{"kind": "mqtt", "id": "broker"}, {"kind": "modbus", "id": "bus1", "device": "/dev/ttyUSB0"}]
    assert any("is polled by source 'bus1'" in p for p in problems(coil, sources=polled))
    assert problems(coil) == []
    assert any("device: required" in p for p in problems({**coil, "device": None}))


def test_two_devices_on_one_output_and_devices_that_would_fight() -> None:
    twin = {**DEHUM, "id": "dehum1b"}
    assert any("switches the same output as actuators[0] (dehum1)" in p for p in problems(DEHUM, twin))
    humidifier = {**DEHUM, "id": "hum1", "topic": "zigbee2mqtt/plug2", "controls": "humidity_up",
                  "start_at": 48, "stop_at": 53}
    assert any("both devices would run at once" in p for p in problems(DEHUM, humidifier))
    assert problems(DEHUM, {**humidifier, "stop_at": 50}) == []


def test_load_plans_raises_and_leaves_disabled_ones_out() -> None:
    with pytest.raises(ConfigError):
        load_plans(parse_config(site({**DEHUM, "start_at": 70})))
    assert load_plans(parse_config(site({**DEHUM, "enabled": False}))) == []


def test_check_config_reports_actuator_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text(f"""
[site]
name = "t"
[storage]
sqlite_path = "{tmp_path / 'a.db'}"
[[rooms]]
id = "A1"
[[sources]]
kind = "mqtt"
id = "broker"
[[sensors]]
id = "th1"
room = "A1"
source = "broker"
topic = "zigbee2mqtt/th1"
format = "zigbee2mqtt"
[[actuators]]
id = "dehum1"
room = "A1"
kind = "tasmota"
source = "broker"
topic = "plug1"
controls = "humidity_down"
start_at = 63
stop_at = 50
""", encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: actuators[0] (dehum1).start_at: 63 %RH is above the paper band" in err
    path.write_text(path.read_text(encoding="utf-8").replace("start_at = 63", "start_at = 55"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0


def test_the_sample_is_valid_and_shows_every_option() -> None:
    import re
    import tomllib

    from alerts.control.settings import ActuatorConfig

    text = (Path(__file__).resolve().parents[3] / "alerts" / "control" / "control.sample.toml").read_text("utf-8")
    sample = tomllib.loads(text)
    shown = set(re.findall(r"^#?\s*([a-z_]+) =", text, re.M))
    assert shown >= set(ActuatorConfig.model_fields), set(ActuatorConfig.model_fields) - shown
    data = site(*sample["actuators"])
    data["sources"] = [{"kind": "mqtt", "id": "broker"}]
    assert control_problems(parse_config(data)) == []
