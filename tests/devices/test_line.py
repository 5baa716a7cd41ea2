"""ASCII line formats: named groups, units, scale, sensor and timestamp groups; fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archmon.errors import ConfigError, DecodeError
from devices.line import LineFormat

TH = r"T=(?P<temperature>-?\d+(?:\.\d+)?),H=(?P<humidity>\d+(?:\.\d+)?)"


def test_example_line() -> None:
    sensor, values = LineFormat(TH).decode(b"T=21.5,H=52.1\r\n")
    assert sensor is None
    assert [(v.quantity, v.value, v.unit, v.ts_ms) for v in values] == [
        ("temperature", 21.5, "°C", None),
        ("humidity", 52.1, "%RH", None),
    ]


def test_sensor_ts_scale_units_and_extras() -> None:
    fmt = LineFormat(
        r"(?P<sensor>\w+);(?P<ts>[^;]+);(?P<temperature>-?\d+);(?P<co2>\d+)",
        units={"temperature": "F", "co2": "ppm"},
        scale={"temperature": 0.1},
        device_tz="Asia/Shanghai",
    )
    sensor, values = fmt.decode(b"probe7;2024-01-15T08:30:00;725;415\n")
    assert sensor == "probe7"
    by_quantity = {v.quantity: v for v in values}
    assert by_quantity["temperature"].value == pytest.approx(22.5)
    assert by_quantity["co2"].unit == "ppm" and by_quantity["co2"].value == 415.0
    assert {v.ts_ms for v in values} == {1705278600000}


def test_optional_group_absent_is_skipped() -> None:
    fmt = LineFormat(r"T=(?P<temperature>\d+)(?:,H=(?P<humidity>\d+))?")
    assert [v.quantity for v in fmt.decode(b"T=20")[1]] == ["temperature"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"T=21.5", "does not match"),
        (b"T=21.5,H=52.1 trailing", "does not match"),
        (b"T=2\xff", "not ascii text"),
    ],
)
def test_bad_lines(line: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        LineFormat(TH).decode(line)


def test_group_that_is_not_a_number() -> None:
    with pytest.raises(DecodeError, match="temperature: 'abc' is not a number"):
        LineFormat(r"T=(?P<temperature>\w+)").decode(b"T=abc")


@pytest.mark.parametrize(
    ("pattern", "kwargs", "reason"),
    [
        ("T=(", {}, "not a valid regex"),
        (r"(?P<sensor>\w+)", {}, "no quantity group"),
        (TH, {"encoding": "klingon"}, "not a known text encoding"),
        (TH, {"units": {"temperature": "K"}}, "not C or F"),
        (TH, {"device_tz": "Mars/Base"}, "time zone"),
    ],
)
def test_bad_formats_are_config_errors(pattern: str, kwargs: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        LineFormat(pattern, **kwargs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80) | st.text(max_size=40).map(str.encode))
def test_fuzz_only_decode_error(line: bytes) -> None:
    for fmt in (
        LineFormat(TH),
        LineFormat(r"(?P<ts>.*?),(?P<temperature>.*?),(?P<sensor>.*)", encoding="utf-8"),
    ):
        try:
            _, values = fmt.decode(line)
        except DecodeError:
            continue
        assert values and all(isinstance(v.value, float) for v in values)
