"""Routine non-measurement messages on a device's topics are recognised as such (the pipeline counts
them as ignored instead of quarantining them), while broken sensor payloads stay plain decode errors."""

from __future__ import annotations

import pytest

from archmon.errors import DecodeError, NotSensorData
from devices.formats import get_decoder, make_options

NOT_DATA = [
    ("tasmota", "tele/th_01/STATE", b'{"Time":"2026-01-05T08:00:00","Uptime":"0T01:00:00","Heap":25}'),
    ("tasmota", "tele/th_01/INFO1", b'{"Info1":{"Module":"Generic","Version":"13.2.0(tasmota)"}}'),
    ("shelly-gen1", "shellies/shellyht-AB12/sensor/act_reasons", b'["sensor"]'),
    ("shelly-gen1", "shellies/shellyht-AB12/sensor/ext_power", b"false"),
    ("shelly-gen1", "shellies/shellyht-AB12/announce", b'{"id":"shellyht-AB12","model":"SHHT-1","fw_ver":"1.11"}'),
    ("shelly-gen1", "shellies/shellyht-AB12/info", b'{"wifi_sta":{"connected":true}}'),
    ("shelly-gen2", "shellyplusht-x/events/rpc",
     b'{"src":"shellyplusht-x","method":"NotifyEvent","params":{"ts":1700000000.1,"events":[]}}'),
    ("esphome", "archive-node/debug", b"[D][sensor:094]: 'temp': Sending state 21.5"),
    ("esphome", "archive-node/sensor/wifi_signal/state", b"-61"),
    ("esphome", "archive-node/sensor/uptime/state", b"12345"),
    ("zigbee2mqtt", "zigbee2mqtt/paper_th/set", b'{"state":"ON"}'),
    ("zigbee2mqtt", "zigbee2mqtt/bridge/state", b'{"state":"online"}'),
]


@pytest.mark.parametrize(("fmt", "topic", "payload"), NOT_DATA)
def test_routine_messages_are_not_sensor_data(fmt: str, topic: str, payload: bytes) -> None:
    with pytest.raises(NotSensorData):
        get_decoder(fmt).decode(topic, payload, make_options(None))


@pytest.mark.parametrize(("fmt", "topic", "payload"), [
    ("tasmota", "tele/th_01/SENSOR", b'{"AM2301":{"Temperature":"warm"}}'),
    ("zigbee2mqtt", "zigbee2mqtt/paper_th", b"{broken"),
    ("esphome", "archive-node/sensor/temperature/state", b"hot"),
    ("shelly-gen2", "shellyplusht-x/events/rpc", b'{"method":"NotifyStatus","params":"x"}'),
])
def test_broken_sensor_payloads_are_still_errors(fmt: str, topic: str, payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        get_decoder(fmt).decode(topic, payload, make_options(None))
    assert not isinstance(info.value, NotSensorData)
