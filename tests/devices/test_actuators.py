"""Actuator command formats: the messages that switch each kind and what its reports say."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.actuators import (
    MQTT_SWITCHES,
    SWITCH_KINDS,
    Availability,
    EsphomeSwitch,
    ModbusCoil,
    Publish,
    ShellySwitch,
    SwitchReport,
    TasmotaSwitch,
    Zigbee2MqttSwitch,
    pulse_time,
)


def test_zigbee2mqtt_set_get_and_state_read_back() -> None:
    plug = Zigbee2MqttSwitch("zigbee2mqtt/plug-dehum1")
    assert plug.command(True) == [Publish("zigbee2mqtt/plug-dehum1/set", b'{"state": "ON"}')]
    assert json.loads(plug.command(True, auto_off_s=1800)[0].payload) == {"state": "ON", "on_time": 1800}
    assert json.loads(plug.command(False, auto_off_s=1800)[0].payload) == {"state": "OFF"}  # no timer on OFF
    assert plug.query() == [Publish("zigbee2mqtt/plug-dehum1/get", b'{"state": ""}')]
    state = b'{"state":"ON","power":431.2,"linkquality":96}'
    assert plug.parse("zigbee2mqtt/plug-dehum1", state) == SwitchReport(True, "state")
    assert plug.parse("zigbee2mqtt/plug-dehum1", b'{"power":0.0}') is None  # no state key: says nothing
    assert plug.parse("zigbee2mqtt/plug-dehum1/availability", b'{"state":"offline"}') == Availability(False,
                                                                                                      "availability")
    assert plug.parse("zigbee2mqtt/plug-dehum1/availability", b"online") == Availability(True, "availability")
    assert plug.parse("zigbee2mqtt/plug-dehum10", state) is None  # another device's topic
    gang = Zigbee2MqttSwitch("zigbee2mqtt/relay2", state_property="state_l2")
    assert gang.parse("zigbee2mqtt/relay2", b'{"state_l1":"ON","state_l2":"OFF"}') == SwitchReport(False, "state")


def test_tasmota_power_result_stat_tele_and_pulse_time() -> None:
    plug = TasmotaSwitch("plug-ac1")
    assert plug.command(True) == [Publish("cmnd/plug-ac1/POWER", b"ON")]
    assert plug.query() == [Publish("cmnd/plug-ac1/POWER", b"")]  # an empty payload asks
    assert plug.setup(auto_off_s=1800) == [Publish("cmnd/plug-ac1/PulseTime1", b"1900")]
    assert plug.setup(auto_off_s=None) == []
    assert plug.parse("stat/plug-ac1/POWER", b"OFF") == SwitchReport(False, "stat/POWER")
    assert plug.parse("stat/plug-ac1/POWER1", b"ON") == SwitchReport(True, "stat/POWER1")  # asked as POWER1
    assert plug.parse("stat/plug-ac1/RESULT", b'{"POWER":"ON"}') == SwitchReport(True, "RESULT")
    assert plug.parse("stat/plug-ac1/RESULT", b'{"PulseTime1":{"Set":1900}}') is None
    assert plug.parse("tele/plug-ac1/STATE", b'{"Time":"2024-07-01T08:00:00","POWER":"OFF"}') == SwitchReport(
        False, "STATE")
    assert plug.parse("tele/plug-ac1/LWT", b"Offline") == Availability(False, "LWT")
    second = TasmotaSwitch("strip", relay=2, full_topic="home/%topic%/%prefix%/")
    assert second.command(False) == [Publish("home/strip/cmnd/POWER2", b"OFF")]
    assert second.parse("home/strip/stat/RESULT", b'{"POWER1":"ON","POWER2":"OFF"}') == SwitchReport(False, "RESULT")
    assert second.parse("home/strip/stat/RESULT", b'{"POWER1":"ON"}') is None  # about another relay


def test_pulse_time_encoding() -> None:
    assert [pulse_time(s) for s in (0, 5, 11, 12, 360, 64_800)] == [0, 50, 110, 112, 460, 64_900]
    with pytest.raises(ValueError, match="64800"):
        pulse_time(64_801)


def test_shelly_switch_set_rpc_and_its_reports() -> None:
    plug = ShellySwitch("shellyplusplugs-a8032ab1c2d3", rpc_src="archmon-site-control")
    first, second = plug.command(True, auto_off_s=900)[0], plug.command(False, auto_off_s=900)[0]
    assert first.topic == "shellyplusplugs-a8032ab1c2d3/rpc"
    body = json.loads(first.payload)
    assert body["method"] == "Switch.Set" and body["src"] == "archmon-site-control"
    assert body["params"] == {"id": 0, "on": True, "toggle_after": 900}
    assert json.loads(second.payload)["params"] == {"id": 0, "on": False}
    assert json.loads(second.payload)["id"] != body["id"]  # every request its own id
    assert json.loads(plug.query()[0].payload)["method"] == "Switch.GetStatus"
    notify = {"src": "shellyplusplugs-a8032ab1c2d3", "method": "NotifyStatus",
              "params": {"ts": 1.0, "switch:0": {"id": 0, "output": True, "apower": 430.0}}}
    assert plug.parse("shellyplusplugs-a8032ab1c2d3/events/rpc", json.dumps(notify).encode()) == SwitchReport(
        True, "NotifyStatus")
    partial = {"method": "NotifyStatus", "params": {"switch:0": {"id": 0, "apower": 12.0}}}
    assert plug.parse("shellyplusplugs-a8032ab1c2d3/events/rpc", json.dumps(partial).encode()) is None
    answer = {"id": 2, "src": "shellyplusplugs-a8032ab1c2d3", "dst": "archmon-site-control",
              "result": {"id": 0, "output": False}}
    assert plug.parse("archmon-site-control/rpc", json.dumps(answer).encode()) == SwitchReport(False, "GetStatus")
    other = {**answer, "src": "shellyplus1-000000000000"}
    assert plug.parse("archmon-site-control/rpc", json.dumps(other).encode()) is None  # another device's answer
    set_answer = {**answer, "result": {"was_on": True}}
    assert plug.parse("archmon-site-control/rpc", json.dumps(set_answer).encode()) is None
    assert plug.parse("shellyplusplugs-a8032ab1c2d3/status/switch:0", b'{"id":0,"output":true}') == SwitchReport(
        True, "status")
    assert plug.parse("shellyplusplugs-a8032ab1c2d3/online", b"false") == Availability(False, "online")


def test_esphome_switch_command_and_retained_state() -> None:
    node = EsphomeSwitch("esphome-dehum3", switch="relay")
    assert node.command(True, auto_off_s=600) == [Publish("esphome-dehum3/switch/relay/command", b"ON")]
    assert node.query() == [] and not node.queryable  # its retained state is the read-back
    assert node.parse("esphome-dehum3/switch/relay/state", b"OFF") == SwitchReport(False, "state")
    assert node.parse("esphome-dehum3/status", b"offline") == Availability(False, "status")
    assert node.auto_off == "none"


def test_modbus_coil_write_and_read_back() -> None:
    single, multiple = ModbusCoil(3, 7), ModbusCoil(3, 7, function=15)
    assert (single.write(True).function, single.write(True).values) == (5, (True,))
    assert multiple.write(False).function == 15
    assert single.read_back([True, False, False, False, False, False, False, False]) is True
    assert single.read_back([]) is None
    for bad in ({"device_id": 0, "coil": 0}, {"device_id": 1, "coil": -1}, {"device_id": 1, "coil": 0, "function": 6}):
        with pytest.raises(ValueError):
            ModbusCoil(**bad)  # type: ignore[arg-type]


def test_every_kind_is_registered() -> None:
    assert set(SWITCH_KINDS) == {*MQTT_SWITCHES, "modbus"}
    for kind, cls in MQTT_SWITCHES.items():
        assert cls.kind == kind
    from alerts.control.settings import SwitchKind

    assert set(SwitchKind.__args__) == set(SWITCH_KINDS)  # type: ignore[attr-defined]


SWITCHES = [Zigbee2MqttSwitch("z/p"), TasmotaSwitch("t"), ShellySwitch("s", rpc_src="a"), EsphomeSwitch("e")]


@given(topic_index=st.integers(0, 10), payload=st.binary(max_size=200))
def test_parsers_never_raise_on_garbage(topic_index: int, payload: bytes) -> None:
    for switch in SWITCHES:
        filters = switch.filters()
        topic = filters[topic_index % len(filters)]
        result = switch.parse(topic, payload)
        assert result is None or isinstance(result, SwitchReport | Availability)
