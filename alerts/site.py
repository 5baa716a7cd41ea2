"""From the site's ``Config`` to what the engine needs: validated alert settings, each room's resolved
profile, sensor infos, and :func:`check_config` (every problem with its key path and bad value)."""

from __future__ import annotations

import datetime as dt

import pydantic

from alerts.model import EXEMPT_RULES, ConfiguredCalibration, SensorInfo
from alerts.profiles import StandardProfile, resolve_profile
from alerts.settings import AlertSettings
from archmon.config import Config, SensorConfig
from archmon.errors import ConfigError

__all__ = ["check_config", "configured_calibration", "exempt_rule_problems", "load_settings", "room_profiles",
           "sensor_infos"]


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
    if config.service.store_only:  # an instance that only stores and forwards judges nothing
        from alerts.settings import RuleSettings

        settings = settings.model_copy(update={"rules": {name: RuleSettings(enabled=False) for name in RULES}})
    return settings


def exempt_rule_problems(settings: AlertSettings) -> list[str]:
    """Smoke and leak alerts must always reach someone: they cannot be disabled or made less than critical
    (a lower severity would let the routes treat them as ordinary alerts). Checked by :func:`check_config`,
    which ``archmon run`` and ``archmon check-config`` apply; the engine itself (replay, tests judging one
    rule) takes the settings as given."""
    problems = []
    for name in sorted(EXEMPT_RULES):
        rule = settings.rules.get(name)
        if rule is None:
            continue
        if not rule.enabled:
            problems.append(f"alerts.rules.{name}.enabled: the {name} rule cannot be disabled; smoke and leak "
                            f"alerts are always on (got False)")
        if rule.severity is not None and rule.severity != "critical":
            problems.append(f"alerts.rules.{name}.severity: {name} alerts are always critical and cannot be "
                            f"lowered (got {rule.severity!r})")
    return problems


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


def configured_calibration(sensor: SensorConfig) -> ConfiguredCalibration | None:
    """The latest ``calibrated_on`` date of the sensor's ``[sensors.calibration.*]`` tables with its certificate
    (a value that is not an ISO date is left out: :func:`check_config` reports it)."""
    best: ConfiguredCalibration | None = None
    for cal in sensor.calibration.values():
        try:
            day = dt.date.fromisoformat(cal.calibrated_on) if cal.calibrated_on else None
        except ValueError:
            day = None
        if day is not None and (best is None or day > best.calibrated_on):
            best = ConfiguredCalibration(day, cal.certificate)
    return best


def sensor_infos(config: Config, profiles: dict[str, StandardProfile]) -> dict[str, SensorInfo]:
    """The enabled sensors with their room's profile."""
    return {
        sensor.id: SensorInfo(
            id=sensor.id, room=sensor.room, kind=sensor.kind, expected_interval_s=sensor.expected_interval_s,
            profile=profiles[sensor.room], configured_calibration=configured_calibration(sensor),
            live=sensor.live,
        )
        for sensor in config.sensors
        if sensor.enabled and sensor.room in profiles
    }


def check_config(config: Config) -> list[str]:
    """Problems in the alert part of a configuration (empty when it is fine).

    Checks the ``[alerts]`` table (smoke and leak cannot be disabled or lowered below critical), every
    room's profile id and overrides (a ``custom`` room needs band limits), and site-wide profile overrides
    for unknown profile ids. Each problem names the key path and the bad value.
    """
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return list(exc.problems)
    # (a store-only instance runs no rule at all, by design: smoke and leak are judged where the sensor is owned)
    problems: list[str] = [] if config.service.store_only else exempt_rule_problems(settings)
    for profile_id, layer in settings.profiles.items():
        try:
            resolve_profile(profile_id, layer, where=f"alerts.profiles.{profile_id}")
        except ConfigError as exc:
            problems.extend(exc.problems)
    try:
        profiles = room_profiles(config, settings)
    except ConfigError as exc:
        problems.extend(exc.problems)
        profiles = {}
    problems.extend(_calibration_problems(config, settings))
    for index, room in enumerate(config.rooms):
        profile = profiles.get(room.id)
        if room.profile == "custom" and profile is not None and not any(
            limit is not None for band in (profile.temperature, profile.humidity) for limit in (band.low, band.high)
        ):
            problems.append(
                f"rooms[{index}] ({room.id}).overrides: profile 'custom' with no band overrides: temperature and "
                f"humidity are not judged in this room; set e.g. overrides = {{ temperature = {{ low = 14, high = 24 "
                f"}}, humidity = {{ low = 45, high = 60 }} }} (got {room.overrides!r})"
            )
    return problems


def _calibration_problems(config: Config, settings: AlertSettings) -> list[str]:
    """``calibrated_on`` values that are not dates; ``[alerts.calibration.sensors]`` naming unknown sensors."""
    problems = []
    for index, sensor in enumerate(config.sensors):
        for quantity, cal in sensor.calibration.items():
            try:
                if cal.calibrated_on:
                    dt.date.fromisoformat(cal.calibrated_on)
            except ValueError:
                problems.append(f"sensors[{index}] ({sensor.id}).calibration.{quantity}.calibrated_on: not a date "
                                f"YYYY-MM-DD (got {cal.calibrated_on!r})")
    known = {sensor.id for sensor in config.sensors}
    for sensor_id in sorted(set(settings.calibration.sensors) - known):
        problems.append(f"alerts.calibration.sensors.{sensor_id}: unknown sensor; known: {sorted(known)}")
    return problems
