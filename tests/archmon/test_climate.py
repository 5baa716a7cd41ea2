"""Climate maths against the published values of DESIGN.md §8."""

from __future__ import annotations

import math

import pytest

from archmon import climate


def test_dew_point_and_absolute_humidity() -> None:
    assert climate.dew_point(20, 50) == pytest.approx(9.26, abs=0.01)
    assert climate.absolute_humidity(20, 50) == pytest.approx(8.62, abs=0.01)


@pytest.mark.parametrize(("t", "rh", "pi"), [(20, 45, 51), (20, 50, 44.6), (24, 60, 21.1)])
def test_preservation_index(t: float, rh: float, pi: float) -> None:
    assert climate.preservation_index(t, rh) == pytest.approx(pi, abs=0.1 if pi < 50 else 0.5)


def test_twpi_half_year_each() -> None:
    samples = [(0.5, climate.preservation_index(24, 60)), (0.5, climate.preservation_index(14, 45))]
    assert climate.twpi(samples) == pytest.approx(35.3, abs=0.05)
    assert climate.twpi([]) is None
    assert climate.twpi([(1.0, None)]) is None


def test_emc() -> None:
    assert climate.emc(20, 50) == pytest.approx(9.27, abs=0.01)


@pytest.mark.parametrize("bad", [(None, 50), (20, None), (20, 150), (200, 50), (math.nan, 50), (20, -1)])
def test_unavailable_input_gives_none(bad: tuple) -> None:
    for func in (climate.dew_point, climate.absolute_humidity, climate.preservation_index, climate.emc):
        assert func(*bad) is None
    assert climate.dew_point(20, 0) is None  # log(0): no dew point for perfectly dry air


def test_mould_risk_and_exposure() -> None:
    assert climate.mould_risk(20, 65) is True
    assert climate.mould_risk(20, 64.9) is False
    assert climate.mould_risk(1, 90) is False  # too cold to grow
    assert climate.mould_risk(20, None) is None
    hours = [(1, 20, 70), (1, 20, 70), (1, 20, 50), (1, 20, 66), (1, None, None), (1, 20, 66), (1, 20, 67)]
    assert climate.mould_exposure(hours) == 3
