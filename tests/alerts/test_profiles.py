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


def test_smoke_and_leak_cannot_be_disabled_or_lowered(tmp_path: Path) -> None:
    from alerts.model import is_exempt

    rules = {"smoke": {"severity": "major"}, "leak": {"enabled": False}}
    problems = check_config(site_config(tmp_path, alerts={"rules": rules}))
    assert any(p.startswith("alerts.rules.smoke.severity:") and "'major'" in p and "critical" in p for p in problems)
    assert any(p.startswith("alerts.rules.leak.enabled:") and "cannot be disabled" in p for p in problems)
    assert check_config(site_config(tmp_path, alerts={"rules": {"smoke": {"severity": "critical"}}})) == []
    # maintenance exemption is by rule, not only by severity
    assert is_exempt("smoke", "major") and is_exempt("leak", "minor") and not is_exempt("band", "major")


def test_custom_profile_without_band_overrides_is_a_problem(tmp_path: Path) -> None:
    problems = check_config(site_config(tmp_path, profile="custom"))
    assert any(p.startswith("rooms[0] (A1).overrides: profile 'custom' with no band overrides") for p in problems)
    assert check_config(site_config(tmp_path, profile="custom", overrides={"humidity": {"high": 60}})) == []


def test_replay_rejects_nan_and_inf_with_the_line(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    import pytest

    from alerts.replay import read_readings_csv
    from archmon.errors import ConfigError

    for bad in ("nan", "inf", "-Infinity"):
        path = tmp_path / "r.csv"
        path.write_text(f"ts,sensor,quantity,value\n2024-03-04T10:00:00,T1,humidity,50\n"
                        f"2024-03-04T10:01:00,T1,humidity,{bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"r\.csv:3: .*not a finite number"):
            read_readings_csv(path, ZoneInfo("Asia/Shanghai"))


def test_working_hours_across_midnight_night_shift() -> None:
    import datetime as dt

    from alerts.settings import WorkingHours

    night = WorkingHours(start=dt.time(22, 0), end=dt.time(6, 0), holidays=[dt.date(2024, 10, 1)])
    at = dt.datetime  # 2024-03-08 is a Friday
    assert night.is_working_time(at(2024, 3, 8, 23, 0))  # Friday night
    assert night.is_working_time(at(2024, 3, 9, 3, 0))  # Saturday 03:00: Friday's shift
    assert not night.is_working_time(at(2024, 3, 9, 12, 0))  # midday is outside the shift
    assert not night.is_working_time(at(2024, 3, 9, 23, 0))  # Saturday night: not a working day
    assert not night.is_working_time(at(2024, 3, 10, 3, 0))  # Sunday 03:00: Saturday's (no) shift
    assert night.is_working_time(at(2024, 3, 11, 5, 59)) is False  # Monday 05:59: Sunday's (no) shift
    assert night.is_working_time(at(2024, 3, 11, 22, 0))
    assert not night.is_working_time(at(2024, 10, 2, 2, 0))  # after the holiday's (no) shift
    day = WorkingHours()
    assert day.is_working_time(at(2024, 3, 8, 9, 0)) and not day.is_working_time(at(2024, 3, 8, 20, 0))
