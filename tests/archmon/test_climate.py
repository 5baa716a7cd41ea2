"""Climate maths against the published values of DESIGN.md §8, and independent checks on random inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# -- independent checks on random inputs ---------------------------------------------------------------

ROOM_T = st.floats(min_value=10, max_value=50, allow_nan=False)
ANY_T = st.floats(min_value=-40, max_value=85, allow_nan=False)
RH = st.floats(min_value=0.5, max_value=99.5, allow_nan=False)


@given(t=ANY_T, rh=st.floats(min_value=0.01, max_value=100, allow_nan=False))
def test_dew_point_never_above_the_air_temperature(t: float, rh: float) -> None:
    dew = climate.dew_point(t, rh)
    assert dew is not None and dew <= t + 1e-9


@given(t=ANY_T, rh=RH, step=st.floats(min_value=0.1, max_value=20))
def test_emc_and_absolute_humidity_rise_with_humidity(t: float, rh: float, step: float) -> None:
    higher = min(rh + step, 99.9)
    assert climate.emc(t, higher) > climate.emc(t, rh)  # type: ignore[operator]
    assert climate.absolute_humidity(t, higher) > climate.absolute_humidity(t, rh)  # type: ignore[operator]


@given(t=ROOM_T, rh=RH, step=st.floats(min_value=0.5, max_value=20))
def test_emc_falls_with_temperature_at_room_conditions(t: float, rh: float, step: float) -> None:
    # the Hailwood-Horrobin fit is not monotonic in T near freezing at high RH; archive rooms are 10-50 ℃
    assert climate.emc(min(t + step, 85), rh) < climate.emc(t, rh)  # type: ignore[operator]


@given(t=ANY_T, rh=st.floats(min_value=0, max_value=100, allow_nan=False), dt=st.floats(min_value=0.5, max_value=20),
       drh=st.floats(min_value=0.5, max_value=20))
def test_pi_falls_with_warmer_or_damper_air(t: float, rh: float, dt: float, drh: float) -> None:
    pi = climate.preservation_index(t, rh)
    assert pi is not None and pi > 0
    # a step of at least 0.5 (near the range's top the clamp would shrink it to a float's last digit, where
    # the two conditions are the same number)
    if t <= 84.5:
        assert climate.preservation_index(min(t + dt, 85), rh) < pi  # type: ignore[operator]
    if rh <= 99.5:
        assert climate.preservation_index(t, min(rh + drh, 100)) < pi  # type: ignore[operator]


@given(values=st.lists(st.tuples(st.floats(min_value=0.01, max_value=10), ROOM_T, RH), min_size=1, max_size=20))
def test_twpi_lies_between_the_smallest_and_largest_pi(values: list[tuple[float, float, float]]) -> None:
    samples = [(w, climate.preservation_index(t, rh)) for w, t, rh in values]
    pis = [pi for _, pi in samples if pi is not None]
    assert min(pis) * (1 - 1e-9) <= climate.twpi(samples) <= max(pis) * (1 + 1e-9)  # type: ignore[operator]


def test_verdict_bands() -> None:
    assert [climate.pi_verdict(v) for v in (44.9, 45, 74.9, 75, None)] == ["risk", "ok", "ok", "good", None]
    assert climate.emc_mechanical_verdict(5, 12.5) == "ok"
    assert climate.emc_mechanical_verdict(4.9, 10) == climate.emc_mechanical_verdict(6, 12.6) == "risk"
    assert [climate.emc_corrosion_verdict(v) for v in (6.9, 7, 10.4, 10.5, None)] == ["good", "ok", "ok", "risk",
                                                                                       None]


def test_archmon_climate_prints_the_published_values_and_unavailable_for_bad_input(
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from archmon.cli import main

    assert main(["climate", "--t", "20", "--rh", "50", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dew_point_c": 9.26, "abs_humidity_g_m3": 8.62, "pi_years": 44.6,
                                                   "emc_pct": 9.27, "mould_risk": False}
    assert main(["climate", "--t", "24", "--rh", "60", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["pi_years"] == 21.1
    for bad in (["--t", "20", "--rh", "101"], ["--t", "nan", "--rh", "50"], ["--t", "90", "--rh", "50"]):
        assert main(["climate", *bad, "--format", "json"]) == 0
        assert set(json.loads(capsys.readouterr().out).values()) == {None}
    assert main(["climate", "--t", "22", "--rh", "70", "--lang", "en"]) == 0
    assert "mould risk: yes" in capsys.readouterr().out


def test_archmon_climate_speaks_the_sites_language(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from archmon.cli import main

    monkeypatch.chdir(tmp_path)  # no archmon.toml here: archmon's default, Chinese
    monkeypatch.delenv("ARCHMON_CONFIG", raising=False)
    assert main(["climate", "--t", "22", "--rh", "70"]) == 0
    out = capsys.readouterr().out
    assert "霉变风险：有" in out and "露点（℃）：" in out and "mould" not in out
    assert main(["climate", "--t", "22", "--rh", "101"]) == 0
    assert "露点（℃）：无法计算" in capsys.readouterr().out
    site = tmp_path / "en.toml"
    site.write_text('[site]\nname = "x"\ntimezone = "Europe/Berlin"\nlanguage = "en"\n', encoding="utf-8")
    assert main(["climate", "--t", "22", "--rh", "70", "--config", str(site)]) == 0
    assert "mould risk: yes" in capsys.readouterr().out
    cn = tmp_path / "cn.toml"
    cn.write_text('[site]\nname = "x"\ntimezone = "Asia/Shanghai"\n', encoding="utf-8")  # language zh: default
    assert main(["climate", "--t", "22", "--rh", "70", "--config", str(cn)]) == 0
    assert "霉变风险：有" in capsys.readouterr().out
