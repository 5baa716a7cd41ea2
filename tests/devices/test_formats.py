"""Decoder behaviour beyond the case folders: registry, options, edge cases each format must get right."""

from __future__ import annotations

import importlib
import logging
import math
import pkgutil

import pytest

import devices.formats
from archmon.errors import ConfigError, DecodeError
from devices.decoded import Decoded, DecodeOptions
from devices.formats import DECODERS, Decoder, decode_to_json, get_decoder, make_options
from devices.formats.esphome import infer_quantity
from devices.formats.generic import json_path
from devices.formats.tasmota import TasmotaDecoder

OPTS = DecodeOptions()


def decode(fmt: str, topic: str, payload: bytes | str, **options: object) -> Decoded:
    raw = payload.encode() if isinstance(payload, str) else payload
    return get_decoder(fmt).decode(topic, raw, make_options(options))


def values(decoded: Decoded) -> dict[str, float]:
    return {v.quantity: v.value for v in decoded.values}


# --- registry -------------------------------------------------------------------------------------


def test_registry_has_exactly_the_documented_names() -> None:
    assert set(DECODERS) == {"zigbee2mqtt", "tasmota", "shelly-gen1", "shelly-gen2", "esphome", "json"}
    for name, decoder in DECODERS.items():
        assert decoder.name == name
        assert isinstance(decoder, Decoder)


def test_every_decoder_class_in_the_package_is_registered() -> None:
    registered = {type(d) for d in DECODERS.values()}
    found = set()
    for module_info in pkgutil.iter_modules(devices.formats.__path__):
        if module_info.name.startswith("_") or module_info.name == "base":
            continue
        module = importlib.import_module(f"devices.formats.{module_info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and hasattr(obj, "decode"):
                found.add(obj)
    assert found == registered


def test_unknown_format_lists_known_names() -> None:
    with pytest.raises(KeyError, match="known: esphome, json, shelly-gen1"):
        get_decoder("homie")


def test_make_options_routes_unknown_keys_to_extra_and_rejects_bad_types() -> None:
    options = make_options({"base_topic": "z2m", "fields": {"t": "temperature"}, "extra": {"block": "X"}})
    assert options.extra == {"base_topic": "z2m", "block": "X"}
    assert options.fields == {"t": "temperature"}
    with pytest.raises(ConfigError, match="fields"):
        make_options({"fields": ["temperature"]})


# --- zigbee2mqtt ----------------------------------------------------------------------------------


def test_z2m_prefers_illuminance_lux_and_skips_nulls() -> None:
    got = decode("zigbee2mqtt", "zigbee2mqtt/hall", '{"illuminance": 17500, "illuminance_lux": 56, "humidity": null}')
    assert values(got) == {"light": 56.0}


def test_z2m_contact_false_is_door_open() -> None:
    assert values(decode("zigbee2mqtt", "zigbee2mqtt/d", '{"contact": false}')) == {"door": 1.0}


def test_z2m_state_without_quantities_is_empty_not_error() -> None:
    got = decode("zigbee2mqtt", "zigbee2mqtt/a/b/c", '{"linkquality": 120, "action": "single"}')
    assert got == Decoded("a/b/c", "zigbee2mqtt/a/b/c")


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("zigbee2mqtt/lamp/set", "command topic"),
        ("zigbee2mqtt/lamp/set/brightness", "command topic"),
        ("other/lamp", "not under the base topic"),
        ("zigbee2mqtt/", "not under the base topic"),
        ("zigbee2mqtt/bridge", "bridge message"),
    ],
)
def test_z2m_rejects_non_state_topics(topic: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode("zigbee2mqtt", topic, '{"temperature": 20}')


# --- tasmota --------------------------------------------------------------------------------------


def test_tasmota_several_blocks_reads_the_first_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    decoder = TasmotaDecoder()
    payload = b'{"DS18B20-1":{"Temperature":13.3},"DS18B20-2":{"Temperature":13.1},"TempUnit":"C"}'
    with caplog.at_level(logging.WARNING, logger="devices.formats.tasmota"):
        first = decoder.decode("tele/multi/SENSOR", payload, OPTS)
        decoder.decode("tele/multi/SENSOR", payload, OPTS)
    assert values(first) == {"temperature": 13.3}
    warnings = [r for r in caplog.records if "several sensor blocks" in r.getMessage()]
    assert len(warnings) == 1 and "DS18B20-2" in warnings[0].getMessage()


def test_tasmota_null_reading_skipped_and_unknown_zone_rejected() -> None:
    got = decode("tasmota", "tele/t/SENSOR", '{"DHT11":{"Temperature":null,"Humidity":40}}')
    assert values(got) == {"humidity": 40.0}
    with pytest.raises(DecodeError, match="time zone"):
        decode(
            "tasmota", "tele/t/SENSOR", '{"Time":"2020-01-01T00:00:00","DHT11":{"Humidity":40}}', device_tz="Mars/Base"
        )


def test_tasmota_device_topic_keeps_custom_full_topic() -> None:
    got = decode("tasmota", "site1/tele/th7/SENSOR", '{"SI7021":{"Temperature":20.0,"Humidity":50.0}}')
    assert (got.device, got.device_topic) == ("th7", "site1/tele/th7")


# --- shelly ---------------------------------------------------------------------------------------


def test_shelly_gen2_reads_lowest_instance_unless_told() -> None:
    payload = (
        '{"src":"s","method":"NotifyStatus","params":{"temperature:101":{"tC":30.0},"temperature:100":{"tC":25.0}}}'
    )
    assert values(decode("shelly-gen2", "s/events/rpc", payload)) == {"temperature": 25.0}
    assert values(decode("shelly-gen2", "s/events/rpc", payload, instance=101)) == {"temperature": 30.0}


def test_shelly_gen2_fahrenheit_only_and_status_without_sensors() -> None:
    tf = decode("shelly-gen2", "s/events/rpc", '{"method":"NotifyStatus","params":{"temperature:0":{"tF":68}}}')
    assert values(tf)["temperature"] == pytest.approx(20.0)
    wifi = decode("shelly-gen2", "s/events/rpc", '{"src":"s","method":"NotifyStatus","params":{"wifi":{"rssi":-60}}}')
    assert wifi.values == () and wifi.device == "s"


def test_shelly_gen1_other_base_topic() -> None:
    got = decode("shelly-gen1", "house/shellies/ht1/sensor/humidity", "40", base_topic="house/shellies")
    assert (got.device_topic, values(got)) == ("house/shellies/ht1", {"humidity": 40.0})


# --- esphome --------------------------------------------------------------------------------------


def test_esphome_nan_passes_through_for_the_pipeline() -> None:
    got = decode("esphome", "node/sensor/room_temperature/state", "nan")
    assert math.isnan(got.values[0].value)


def test_esphome_fahrenheit_option() -> None:
    got = decode("esphome", "node/sensor/temp/state", "212", temperature_unit="F")
    assert values(got) == {"temperature": pytest.approx(100.0)}


@pytest.mark.parametrize(
    ("name", "quantity"),
    [
        ("water_temperature", "temperature"),
        ("Living Room Humidity", "humidity"),
        ("front_contact", "door"),
        ("basement_water", "leak"),
        ("soil_moisture", "leak"),
        ("bh1750_illuminance", "light"),
        ("battery_level", "battery"),
        ("uptime", None),
    ],
)
def test_esphome_infers_quantity_from_name(name: str, quantity: str | None) -> None:
    assert infer_quantity(name) == quantity


# --- generic json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [("$", {"a": [{"b": 1}]}), ("a[0].b", 1), ("$.a[0]", {"b": 1}), ("$['a'][0]['b']", 1)],
)
def test_json_path_forms(path: str, expected: object) -> None:
    assert json_path({"a": [{"b": 1}]}, path) == expected


def test_json_path_missing_and_malformed() -> None:
    with pytest.raises(KeyError):
        json_path({"a": [1]}, "$.a[3]")
    with pytest.raises(DecodeError, match="malformed"):
        json_path({"a": 1}, "$.a[x")


def test_json_booleans_only_for_binary_quantities() -> None:
    assert values(decode("json", "t/door", '{"door": true, "LEAK": false}')) == {"door": 1.0, "leak": 0.0}
    with pytest.raises(DecodeError, match="boolean"):
        decode("json", "t/x", '{"temp": true}')


def test_json_epoch_ms_and_huge_numbers() -> None:
    got = decode_to_json("json", "t/x", b'{"t": 20, "time": 1700000000123}', {"ts_field": "time"})
    assert got[0]["ts"] == "2023-11-14T22:13:20.123Z"
    assert "too large" in decode_to_json("json", "t/x", b'{"t": ' + b"9" * 400 + b"}")[0]["error"]
    overflow = decode("json", "t/x", '{"t": 1e999}')
    assert math.isinf(overflow.values[0].value)


def test_json_timestamp_out_of_range_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="out of range"):
        decode("json", "t/x", '{"t": 1, "ts": 1e300}', ts_field="ts")
