"""Modbus presets (schema test), read plans and the poll payload round trip, fuzzed."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archmon.config import RegisterSpec
from archmon.errors import ConfigError, DecodeError
from archmon.quantities import QUANTITIES
from devices.modbus import (
    PresetFile,
    ReadBlock,
    RegisterMap,
    decode_modbus_payload,
    encode_modbus_payload,
    get_register_map,
    load_presets,
    parse_preset,
    read_plan,
)

PRESET_FILES = sorted(p for p in resources.files("devices.modbus_presets").iterdir() if p.name.endswith(".toml"))


def spec(quantity: str, function: int, address: int, scale: float = 1.0, encoding: str = "int16") -> RegisterSpec:
    return RegisterSpec(quantity=quantity, function=function, address=address, scale=scale, encoding=encoding)


# --- schema test (hassfest-style) ---------------------------------------------------------------


@pytest.mark.parametrize("entry", PRESET_FILES, ids=lambda e: e.name)
def test_preset_file_is_valid(entry: Traversable) -> None:
    preset = parse_preset(entry.read_text(encoding="utf-8"), entry.name)
    assert preset.id == entry.name.removesuffix(".toml")
    for register in preset.registers:
        assert register.quantity in QUANTITIES or re.fullmatch(r"input[0-9]+", register.quantity), register
        if register.function in (1, 2):
            assert register.encoding == "bit"
    keys = [(r.function, r.address) for r in preset.registers]
    assert len(keys) == len(set(keys)), "a register is listed twice"


def test_shipped_presets() -> None:
    presets = load_presets()
    assert set(presets) == {"renke-rs-ws-n01", "xy-md02", "kincony-sht30", "di8"}
    assert (presets["renke-rs-ws-n01"].baudrate, presets["renke-rs-ws-n01"].parity) == (4800, "N")
    assert [r.quantity for r in presets["di8"].registers] == [f"input{i}" for i in range(8)]
    assert load_presets() is not load_presets(), "callers get a copy, not the cache"


def test_preset_schema_rejects_unknown_keys_and_bad_registers() -> None:
    good = (PRESET_FILES[0]).read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: colour"):
        parse_preset('colour = "red"\n' + good, "bad.toml")
    data = tomllib.loads(good)
    data["registers"][0]["function"] = 6
    with pytest.raises(pydantic.ValidationError, match="function"):
        PresetFile.model_validate(data)


def test_get_register_map_custom_first_and_unknown_lists_names() -> None:
    custom = {"renke-rs-ws-n01": [spec("temperature", 3, 10)]}
    assert get_register_map("renke-rs-ws-n01", custom).registers[0].address == 10
    assert get_register_map("xy-md02").registers[0].function == 4
    with pytest.raises(KeyError, match="known: di8, kincony-sht30"):
        get_register_map("nope")


# --- read plan ------------------------------------------------------------------------------------


def test_read_plan_merges_contiguous_runs_per_function() -> None:
    regmap = RegisterMap(
        "m",
        (spec("a", 3, 5), spec("b", 3, 1), spec("c", 3, 2), spec("d", 4, 2), spec("e", 3, 0), spec("f", 4, 1)),
    )
    assert read_plan(regmap) == (ReadBlock(3, 0, 3), ReadBlock(3, 5, 1), ReadBlock(4, 1, 2))


def test_read_plan_splits_at_protocol_limit() -> None:
    regmap = RegisterMap("big", tuple(spec(f"x{i}", 3, i) for i in range(130)))
    assert read_plan(regmap) == (ReadBlock(3, 0, 125), ReadBlock(3, 125, 5))


@pytest.mark.parametrize("name", ["renke-rs-ws-n01", "xy-md02", "kincony-sht30", "di8"])
def test_presets_need_one_read(name: str) -> None:
    assert len(read_plan(get_register_map(name))) == 1


# --- payload round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "block_values", "expected"),
    [
        ("renke-rs-ws-n01", [523, 0xFF33], {"humidity": 52.3, "temperature": -20.5}),
        ("xy-md02", [0xFF33, 455], {"temperature": -20.5, "humidity": 45.5}),
        ("kincony-sht30", [10250, 601], {"temperature": -25.0, "humidity": 60.1}),
        ("kincony-sht30", [215, 601], {"temperature": 21.5, "humidity": 60.1}),
        ("di8", [1, 0, 0, 1, 0, 0, 0, 1], {f"input{i}": float(i in (0, 3, 7)) for i in range(8)}),
    ],
)
def test_decode_presets(name: str, block_values: list[int], expected: dict[str, float]) -> None:
    regmap = get_register_map(name)
    (block,) = read_plan(regmap)
    payload = encode_modbus_payload(1, [(block, block_values)])
    values = decode_modbus_payload(regmap, payload)
    assert {v.quantity: v.value for v in values} == expected
    units = {v.quantity: v.unit for v in values}
    assert units.get("temperature", "°C") == "°C" and units.get("input0", "") == ""


def test_encode_payload_shape_and_bools() -> None:
    payload = encode_modbus_payload(7, [(ReadBlock(2, 0, 2), [True, False])])
    assert json.loads(payload) == {"address": 7, "reads": [{"function": 2, "start": 0, "values": [1, 0]}]}
    with pytest.raises(ValueError, match="1 values for 2"):
        encode_modbus_payload(1, [(ReadBlock(3, 0, 2), [1])])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff", "not JSON"),
        (b"[]", 'no "reads" list'),
        (b'{"reads":[{"function":3,"start":0,"values":[70000,1]}]}', "not in 0..65535"),
        (b'{"reads":[{"function":2,"start":0,"values":[2]}]}', "not in 0..1"),
        (b'{"reads":[{"function":3,"start":0,"values":[1.5,1]}]}', "not in 0..65535"),
        (b'{"reads":[{"function":5,"start":0,"values":[1]}]}', "not 1, 2, 3 or 4"),
        (b'{"reads":[{"function":3,"start":1,"values":[1]}]}', "0x0000 (humidity) missing"),
        (b'{"reads":[{"function":4,"start":0,"values":[1,2]}]}', "FC03 0x0000 (humidity) missing"),
    ],
)
def test_decode_rejects_malformed(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(reason)):
        decode_modbus_payload(get_register_map("renke-rs-ws-n01"), payload)


MODBUS_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["address", "reads", "function", "start", "values"]), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100) | MODBUS_JSON.map(lambda d: json.dumps(d).encode()))
def test_decode_fuzz_only_decode_error(payload: bytes) -> None:
    for name in ("renke-rs-ws-n01", "di8"):
        try:
            values = decode_modbus_payload(get_register_map(name), payload)
        except DecodeError:
            continue
        assert all(isinstance(v.value, float) for v in values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_round_trip_int16(registers: list[int]) -> None:
    regmap = get_register_map("xy-md02")
    values = decode_modbus_payload(regmap, encode_modbus_payload(1, [(read_plan(regmap)[0], registers)]))
    signed = registers[0] - 0x10000 if registers[0] >= 0x8000 else registers[0]
    assert values[0].value == pytest.approx(signed / 10)
    assert values[1].value == pytest.approx(registers[1] / 10)
    assert -3276.8 <= values[0].value <= 3276.7
