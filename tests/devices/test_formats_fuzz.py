"""Fuzz every decoder: whatever the topic, bytes, JSON or options, only DecodeError may come out."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archmon.errors import DecodeError
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats import DECODERS, decoded_to_json

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Topic shapes each format routes on, so the fuzzer reaches the payload parsers.
TOPICS: dict[str, list[str]] = {
    "zigbee2mqtt": ["zigbee2mqtt/th", "zigbee2mqtt/a/b", "zigbee2mqtt/th/availability", "zigbee2mqtt/bridge/state"],
    "tasmota": ["tele/th/SENSOR", "tele/th/LWT", "tele/th/STATE", "x/tele/th/SENSOR"],
    "shelly-gen1": [
        "shellies/ht/sensor/temperature",
        "shellies/ht/sensor/humidity",
        "shellies/ht/sensor/battery",
        "shellies/ht/sensor/lux",
        "shellies/ht/sensor/flood",
        "shellies/ht/sensor/state",
        "shellies/ht/sensor/smoke",
        "shellies/ht/online",
    ],
    "shelly-gen2": ["p/events/rpc", "a/b/events/rpc", "p/online", "p/status/temperature:0", "p/status/devicepower:0"],
    "esphome": [
        "n/sensor/temperature/state",
        "n/sensor/humidity/state",
        "n/binary_sensor/door/state",
        "n/sensor/unknown/state",
        "n/status",
    ],
    "json": ["a/b", "x"],
}
KEYS = [
    "temperature", "humidity", "battery", "illuminance", "illuminance_lux", "contact", "smoke", "water_leak",
    "last_seen", "state", "Time", "TempUnit", "AM2301", "DS18B20-1", "ESP32", "Temperature", "Humidity",
    "src", "method", "params", "ts", "temperature:0", "humidity:0", "devicepower:0", "illuminance:0",
    "flood:0", "smoke:0", "tC", "tF", "rh", "lux", "alarm", "percent", "temp", "t", "hum", "rh", "door", "a", "b",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["NotifyStatus", "NotifyFullStatus", "online", "offline", "ON", "OFF", "F", "C", "21.5"])
    | st.sampled_from(["2019-01-01T00:00:00", "2020-02-26T20:44:09+01:00", "nan", "1e999", "-0", "", " "])
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=30,
)
OPTIONS = st.builds(
    DecodeOptions,
    device_tz=st.sampled_from(["UTC", "Asia/Shanghai", "Nowhere/City", "", "../etc"]),
    temperature_unit=st.sampled_from(["C", "F", "K", ""]),
    fields=st.dictionaries(st.sampled_from(["temperature", "humidity", "door", "probe"]), st.sampled_from(
        ["$", "$.a", "a.b", "a[0].b", "$['t']", "[x", "temperature", "$.params.ts"]
    ), max_size=2),
    scale=st.dictionaries(st.sampled_from(["temperature", "humidity"]), st.floats(), max_size=2),
    units=st.dictionaries(st.sampled_from(["temperature", "humidity"]), st.sampled_from(["F", "C", "K"]), max_size=2),
    ts_field=st.none() | st.sampled_from(["ts", "$.params.ts", "Time", "[", "a[0]"]),
    extra=st.dictionaries(st.sampled_from(["base_topic", "block", "instance"]), JSON_VALUES, max_size=2),
)  # fmt: skip


def check(fmt: str, topic: str, payload: bytes, options: DecodeOptions) -> None:
    """Decode; anything but a well-formed Decoded or a one-line DecodeError fails the test."""
    try:
        decoded = DECODERS[fmt].decode(topic, payload, options)
    except DecodeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(decoded, Decoded)
    assert isinstance(decoded.device, str) and isinstance(decoded.device_topic, str)
    assert decoded.availability in (None, "online", "offline")
    for value in decoded.values:
        assert isinstance(value, DecodedValue)
        assert isinstance(value.value, float)
        assert isinstance(value.unit, str)
        if fmt in ("zigbee2mqtt", "shelly-gen2") and value.quantity in ("door", "smoke", "leak"):
            assert value.value in (0.0, 1.0)
    json.dumps(decoded_to_json(decoded))


FORMATS = st.sampled_from(sorted(DECODERS))


@FUZZ
@given(fmt=FORMATS, data=st.data(), payload=st.binary(max_size=200))
def test_arbitrary_bytes(fmt: str, data: st.DataObject, payload: bytes) -> None:
    topic = data.draw(st.sampled_from(TOPICS[fmt]))
    check(fmt, topic, payload, DecodeOptions())


@FUZZ
@given(fmt=FORMATS, data=st.data(), document=JSON_VALUES)
def test_arbitrary_json(fmt: str, data: st.DataObject, document: object) -> None:
    topic = data.draw(st.sampled_from(TOPICS[fmt]))
    check(fmt, topic, json.dumps(document).encode(), DecodeOptions())


@FUZZ
@given(fmt=FORMATS, data=st.data(), document=JSON_VALUES, options=OPTIONS)
def test_arbitrary_json_and_options(fmt: str, data: st.DataObject, document: object, options: DecodeOptions) -> None:
    topic = data.draw(st.sampled_from(TOPICS[fmt]))
    check(fmt, topic, json.dumps(document).encode(), options)


@FUZZ
@given(
    fmt=FORMATS,
    topic=st.text(alphabet=string.ascii_letters + "/:-_$#+", max_size=40) | st.text(max_size=40),
    payload=st.binary(max_size=60) | st.sampled_from([b"21.5", b"ON", b"true", b"online", b"Offline", b"{}"]),
)
def test_arbitrary_topics(fmt: str, topic: str, payload: bytes) -> None:
    check(fmt, topic, payload, DecodeOptions())


# a topic on which each format parses the payload as JSON (Shelly Gen1 and ESPHome send plain values)
_JSON_TOPICS = {"zigbee2mqtt": "zigbee2mqtt/th", "tasmota": "tele/th/SENSOR", "shelly-gen2": "p/events/rpc",
                "json": "a/b"}


def test_deeply_nested_json_is_a_decode_error() -> None:
    payload = b"[" * 100_000 + b"]" * 100_000
    for fmt, topic in _JSON_TOPICS.items():
        with pytest.raises(DecodeError, match="nested too deeply"):
            DECODERS[fmt].decode(topic, payload, DecodeOptions())
    for fmt in sorted(set(DECODERS) - set(_JSON_TOPICS)):  # not a number, not a state: a plain decode error
        with pytest.raises(DecodeError) as caught:
            DECODERS[fmt].decode(TOPICS[fmt][0], payload, DecodeOptions())
        assert type(caught.value) is DecodeError and "\n" not in str(caught.value) and len(str(caught.value)) < 300
