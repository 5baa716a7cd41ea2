"""The [notify] table: the channel registry, samples loaded through the real schema, check-config problems."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from alerts.notify import CHANNELS, check_config, load_notify
from alerts.notify.settings import TimeRange, normalise_phone
from archmon.config import parse_config
from archmon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
CHANNEL_DIR = ROOT / "alerts" / "notify" / "channels"


def _config(notify: dict, rooms: tuple[str, ...] = ("A1",)):
    return parse_config({"rooms": [{"id": r} for r in rooms], "notify": notify})


def test_every_channel_module_is_registered_under_its_type_with_a_sample() -> None:
    modules = {p.stem for p in CHANNEL_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem not in ("base",)}
    assert modules == set(CHANNELS)
    for name, cls in CHANNELS.items():
        assert cls.type == name
        sample = CHANNEL_DIR / f"{name}.sample.toml"
        assert sample.is_file(), f"{name} has no sample"
        tables = tomllib.loads(sample.read_text(encoding="utf-8"))["notify"]["channels"]
        [spec] = tables.values()
        assert spec["type"] == name
        cls.Options.model_validate({k: v for k, v in spec.items() if k != "type"})


def test_the_full_sample_loads_and_only_misses_its_secrets() -> None:
    data = tomllib.loads((ROOT / "alerts" / "notify" / "notify.sample.toml").read_text(encoding="utf-8"))
    config = parse_config({"rooms": [{"id": "paper-1"}], **data})
    plan = load_notify(config)
    assert plan.active and plan.channel_types == {"modem": "gsm_modem", "mail": "smtp", "ding": "dingtalk"}
    assert [r.name for r in plan.config.routes] == ["fire-and-water", "climate"]
    problems = check_config(config)
    assert problems == [
        "notify.channels.mail.password: environment variable ARCHMON_SMTP_PASSWORD is not set",
        "notify.channels.ding.token: environment variable ARCHMON_DINGTALK_TOKEN is not set",
        "notify.channels.ding.secret: environment variable ARCHMON_DINGTALK_SECRET is not set",
    ]


def test_config_problems_name_the_key_and_the_value() -> None:
    config = _config({
        "channels": {"modem": {"type": "gsm_modem"}, "x": {"type": "pager"},
                     "mail": {"type": "smtp", "host": "h", "from": "a@b", "securty": "tls"}},
        "contacts": [{"name": "zhang", "email": "zhang@example.org"}],
        "routes": [{"name": "r", "severities": ["major"], "rooms": ["B9"], "quiet_hours": "22-7",
                    "levels": [{"contacts": ["zhang", "wang"], "channels": ["modem", "fax"]}]}],
    })
    problems = check_config(config)
    assert "notify.channels.modem.port: Field required" in problems
    assert any(p.startswith("notify.channels.x.type: unknown channel type 'pager'") for p in problems)
    assert "notify.channels.mail.securty: unknown option (got 'tls')" in problems
    assert any("quiet_hours" in p and "22:00-07:00" in p for p in problems), problems
    config = _config({
        "channels": {"modem": {"type": "gsm_modem", "port": "/dev/ttyUSB2"}},
        "contacts": [{"name": "zhang", "email": "zhang@example.org"}],
        "routes": [{"name": "r", "severities": ["major"], "rooms": ["B9"],
                    "levels": [{"contacts": ["zhang", "wang"], "channels": ["modem", "fax"]}]}],
    })
    problems = check_config(config)
    assert "notify.routes[0] (r).rooms: unknown room 'B9'; known: ['A1']" in problems
    assert "notify.routes[0] (r).levels[0].channels: unknown channel 'fax'; known: ['modem']" in problems
    assert any("unknown contact 'wang'" in p for p in problems)
    assert any("'zhang' has no phone" in p and "nothing would reach them" in p for p in problems)
    assert any("no route takes critical alerts" in p for p in problems)


def test_check_config_runs_through_archmon_check_references(tmp_path: Path) -> None:
    from archmon.app import check_references

    config = _config({"channels": {"m": {"type": "gsm_modem"}}})
    assert any("notify.channels.m.port: Field required" in p for p in check_references(config))
    with pytest.raises(ConfigError):
        load_notify(config)


def test_no_notify_table_means_no_notifier(tmp_path: Path) -> None:
    from alerts.notify import build_notifier

    assert not load_notify(_config({})).active
    assert build_notifier(_config({}), tmp_path / "x.db") is None
    assert check_config(_config({})) == []


def test_time_ranges_and_phone_numbers() -> None:
    import datetime as dt

    night = TimeRange.parse("22:00-07:00")
    tz = dt.timezone(dt.timedelta(hours=8))
    assert night.contains(dt.datetime(2024, 3, 4, 23, 0, tzinfo=tz))
    assert night.contains(dt.datetime(2024, 3, 5, 6, 59, tzinfo=tz))
    assert not night.contains(dt.datetime(2024, 3, 5, 7, 0, tzinfo=tz))
    assert night.end_after(dt.datetime(2024, 3, 4, 23, 0, tzinfo=tz)) == dt.datetime(2024, 3, 5, 7, 0, tzinfo=tz)
    assert TimeRange.parse("00:00-24:00").contains(dt.datetime(2024, 3, 4, 23, 59, tzinfo=tz))
    with pytest.raises(ValueError):
        TimeRange.parse("25:00-07:00")
    assert normalise_phone("+86 138-0000-0001") == normalise_phone("13800000001") == "13800000001"
    assert normalise_phone("008613800000001") == "13800000001"
