"""From the site's ``Config`` to what the engine needs: validated alert settings, each room's resolved
profile, sensor infos, and :func:`check_config` (every problem with its key path and bad value)."""

from __future__ import annotations

import pydantic

from alerts.model import SensorInfo
from alerts.profiles import StandardProfile, resolve_profile
from alerts.settings import AlertSettings
from archmon.config import Config
from archmon.errors import ConfigError

__all__ = ["check_config", "load_settings", "room_profiles", "sensor_infos"]


def load_settings(config: Config) -> AlertSettings:
    """Validate the ``[alerts]`` table.

    Raises:
        ConfigError: one line per problem, ``alerts.key.path: message (got VALUE)``.
    """
    try:
        settings = AlertSettings.model_validate(config.alerts)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in ("alerts", *err["loc"]))
            message = "unknown option" if err["type"] == "extra_forbidden" else err["msg"].removeprefix(
                "Value error, ")
            problems.append(f"{key}: {message} (got {err['input']!r})")
        raise ConfigError(problems) from None
    from alerts.rules import RULES  # late import: rules import the settings module

    unknown = sorted(set(settings.rules) - set(RULES))
    if unknown:
        raise ConfigError([f"alerts.rules.{name}: unknown rule; known: {sorted(RULES)}" for name in unknown])
    return settings


def room_profiles(config: Config, settings: AlertSettings) -> dict[str, StandardProfile]:
    """Each room's profile with the site-wide and then the room's overrides applied.

    Raises:
        ConfigError: unknown profile id or bad override, naming ``rooms[i] (ID).overrides.key``.
    """
    problems: list[str] = []
    out: dict[str, StandardProfile] = {}
    for index, room in enumerate(config.rooms):
        where = f"rooms[{index}] ({room.id}).overrides"
        site_layer = settings.profiles.get(room.profile, {})
        try:
            out[room.id] = resolve_profile(room.profile, site_layer, room.overrides, where=where)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return out


def sensor_infos(config: Config, profiles: dict[str, StandardProfile]) -> dict[str, SensorInfo]:
    """The enabled sensors with their room's profile."""
    return {
        sensor.id: SensorInfo(
            id=sensor.id, room=sensor.room, kind=sensor.kind, expected_interval_s=sensor.expected_interval_s,
            profile=profiles[sensor.room],
        )
        for sensor in config.sensors
        if sensor.enabled and sensor.room in profiles
    }


def check_config(config: Config) -> list[str]:
    """Problems in the alert part of a configuration (empty when it is fine).

    Checks the ``[alerts]`` table, every room's profile id and overrides, and site-wide profile overrides
    for unknown profile ids. Each problem names the key path and the bad value.
    """
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return list(exc.problems)
    problems: list[str] = []
    for profile_id, layer in settings.profiles.items():
        try:
            resolve_profile(profile_id, layer, where=f"alerts.profiles.{profile_id}")
        except ConfigError as exc:
            problems.extend(exc.problems)
    try:
        room_profiles(config, settings)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems
