"""Standard profiles as data, room overrides and check_config."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.profiles import list_profiles, load_profile, resolve_profile
from alerts.site import check_config
from archmon.errors import ConfigError
from tests.alerts.helpers import site_config

EXPECTED_IDS = {"paper", "special", "audiovisual", "film_copy", "film_master", "optical", "ashrae_aa", "ashrae_a1",
                "ashrae_a2", "ashrae_b", "ashrae_c", "ashrae_d", "custom"}


def test_every_profile_loads_with_names_and_source() -> None:
    profiles = list_profiles()
    assert {p.id for p in profiles} == EXPECTED_IDS
    for p in profiles:
        assert p.name_zh and p.name_en and p.source, p.id


@pytest.mark.parametrize(("pid", "t", "rh"), [
    ("paper", (14, 24), (45, 60)), ("special", (14, 20), (45, 55)), ("audiovisual", (14, 24), (40, 60)),
    ("film_copy", (14, 24), (40, 60)), ("film_master", (13, 15), (35, 45)), ("optical", (15, 20), (25, 45)),
])
def test_cn_profiles_match_design_table(pid: str, t: tuple[int, int], rh: tuple[int, int]) -> None:
    p = load_profile(pid)
    assert (p.temperature.low, p.temperature.high) == t
    assert (p.humidity.low, p.humidity.high) == rh
    assert (p.stability.temperature_max, p.stability.humidity_max, p.stability.interpretation) == (2, 5, "A")
    assert p.mould.rh == 65


def test_paper_is_the_default_profile_and_65_is_configurable(tmp_path: Path) -> None:
    assert site_config(tmp_path).rooms[0].profile == "paper"
    assert resolve_profile("paper", {"humidity": {"high": 65}}).humidity.high == 65


def test_bad_overrides_name_key_path_and_value(tmp_path: Path) -> None:
    config = site_config(tmp_path, overrides={"humidity": {"hihg": 65, "low": "dry"}})
    problems = check_config(config)
    assert any("rooms[0] (A1).overrides.humidity.hihg" in p and "65" in p for p in problems)
    assert any("rooms[0] (A1).overrides.humidity.low" in p and "'dry'" in p for p in problems)


def test_unknown_profile_and_bad_settings_are_reported(tmp_path: Path) -> None:
    assert any("rooms[0] (A1).profile: unknown standard profile 'papyrus'" in p
               for p in check_config(site_config(tmp_path, profile="papyrus")))
    problems = check_config(site_config(tmp_path, alerts={"stale": {"factor": 0.5}, "rulez": 1}))
    assert any(p.startswith("alerts.stale.factor") and "0.5" in p for p in problems)
    assert any(p.startswith("alerts.rulez") for p in problems)
    assert any("alerts.rules.smokey: unknown rule" in p
               for p in check_config(site_config(tmp_path, alerts={"rules": {"smokey": {"enabled": False}}})))
    assert check_config(site_config(tmp_path)) == []


def test_inverted_band_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"humidity: .*low \(70.0\) must be below high"):
        resolve_profile("paper", {"humidity": {"low": 70}})
