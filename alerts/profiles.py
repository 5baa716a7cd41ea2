"""Standard profiles (纸质档案库, 特藏库, ASHRAE classes...): the schema, the loader and room overrides.

A room takes a profile by id; its ``overrides`` (any key of the profile, nested as in the file) are merged
on top and the result is validated again, so every problem names the room, the key path and the value.
"""

from __future__ import annotations

import copy
import functools
import tomllib
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.standards import STANDARDS_DIR
from archmon.errors import ConfigError

__all__ = [
    "Band",
    "Interpretation",
    "MouldLimits",
    "RateLimits",
    "StabilityLimits",
    "StandardProfile",
    "Timing",
    "list_profiles",
    "load_profile",
    "resolve_profile",
]

Interpretation = Literal["A", "B"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Model):
    """Allowed range of one quantity, with the hysteresis used to clear an alert.

    Attributes:
        low: lowest allowed value (None: no lower limit).
        high: highest allowed value (None: no upper limit).
        clear_margin: an alert clears only once the value is this far back inside the band.
        delay_s: overrides the profile's timing.delay_s for this quantity.
        clear_delay_s: overrides the profile's timing.clear_delay_s for this quantity.
    """

    low: float | None = None
    high: float | None = None
    clear_margin: float = Field(default=0.0, ge=0)
    delay_s: float | None = Field(default=None, ge=0)
    clear_delay_s: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class StabilityLimits(_Model):
    """24 h stability (每昼夜波动 / 日较差).

    Attributes:
        interpretation: ``A`` the day's max − min ≤ limit; ``B`` every value within ± limit of the
            set-point (or of the day's mean when no set-point is given).
        temperature_max: limit in K (None: not judged).
        humidity_max: limit in %RH (None: not judged).
        temperature_setpoint: set-point for interpretation B (None: the day's / window's mean).
        humidity_setpoint: set-point for interpretation B (None: the day's / window's mean).
        rolling: also warn early on a rolling 24 h window.
    """

    interpretation: Interpretation = "A"
    temperature_max: float | None = Field(default=None, gt=0)
    humidity_max: float | None = Field(default=None, gt=0)
    temperature_setpoint: float | None = None
    humidity_setpoint: float | None = None
    rolling: bool = True

    def limit(self, quantity: str) -> float | None:
        """The limit for ``temperature`` or ``humidity`` (None otherwise)."""
        return {"temperature": self.temperature_max, "humidity": self.humidity_max}.get(quantity)

    def setpoint(self, quantity: str) -> float | None:
        """The set-point for interpretation B (None: use the mean)."""
        return {"temperature": self.temperature_setpoint, "humidity": self.humidity_setpoint}.get(quantity)


class Timing(_Model):
    """Default delays of the band rules: how long a condition must hold before it fires or clears."""

    delay_s: float = Field(default=900.0, ge=0)
    clear_delay_s: float = Field(default=600.0, ge=0)


class MouldLimits(_Model):
    """Mould risk: RH at or above ``rh`` sustained for ``delay_s``, within ``t_low``..``t_high`` ℃."""

    rh: float = Field(default=65.0, gt=0, le=100)
    delay_s: float = Field(default=86400.0, ge=0)
    clear_margin: float = Field(default=2.0, ge=0)
    t_low: float = 2.0
    t_high: float = 45.0


class RateLimits(_Model):
    """Rate of change: largest swing (max − min) allowed within ``window_s`` (site-tunable, not a standard)."""

    window_s: float = Field(default=3600.0, gt=0)
    temperature_max: float | None = Field(default=2.0, gt=0)
    humidity_max: float | None = Field(default=5.0, gt=0)

    def limit(self, quantity: str) -> float | None:
        """The limit for ``temperature`` or ``humidity`` (None otherwise)."""
        return {"temperature": self.temperature_max, "humidity": self.humidity_max}.get(quantity)


class StandardProfile(_Model):
    """One archive-room standard: bands, stability limits, delays, mould threshold and its source."""

    id: str
    name_zh: str
    name_en: str
    source: str
    language: Literal["zh", "en"] = "zh"
    temperature: Band = Band()
    humidity: Band = Band()
    stability: StabilityLimits = StabilityLimits()
    timing: Timing = Timing()
    mould: MouldLimits = MouldLimits()
    rate: RateLimits = RateLimits()

    def band(self, quantity: str) -> Band | None:
        """The band of ``temperature`` or ``humidity`` (None for other quantities)."""
        return {"temperature": self.temperature, "humidity": self.humidity}.get(quantity)


def _profile_files() -> dict[str, Any]:
    return {path.stem: path for path in sorted(STANDARDS_DIR.glob("*.toml"))}


@functools.cache
def _raw(profile_id: str) -> dict[str, Any]:
    path = _profile_files().get(profile_id)
    if path is None:
        raise KeyError(profile_id)
    with path.open("rb") as handle:
        return tomllib.load(handle)


def list_profiles() -> list[StandardProfile]:
    """Every profile shipped in ``alerts/standards/``, sorted by id."""
    return [load_profile(pid) for pid in _profile_files()]


def load_profile(profile_id: str) -> StandardProfile:
    """Load one shipped profile.

    Raises:
        ConfigError: the id is unknown (the message lists the known ids) or the file is invalid.
    """
    try:
        data = _raw(profile_id)
    except KeyError:
        raise ConfigError(f"unknown standard profile {profile_id!r}; known: {sorted(_profile_files())}") from None
    try:
        return StandardProfile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_problems(exc, f"alerts/standards/{profile_id}.toml")) from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _problems(exc: pydantic.ValidationError, where: str) -> list[str]:
    problems = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown option"
        problems.append(f"{where}.{key}: {message} (got {err['input']!r})")
    return problems


def resolve_profile(profile_id: str, *layers: dict[str, Any], where: str = "overrides") -> StandardProfile:
    """A profile with override layers merged on top (site-wide first, then the room's).

    Args:
        profile_id: id of a shipped profile.
        *layers: nested dicts with the profile's keys (``{"humidity": {"high": 65}}``).
        where: key path prefix used in error messages (``rooms[0] (A1).overrides``).

    Raises:
        ConfigError: unknown profile, unknown key or bad value; each problem names the key path and value.
    """
    data = _raw_or_error(profile_id, where)
    for layer in layers:
        if "id" in layer and layer["id"] != profile_id:
            raise ConfigError(f"{where}.id: cannot change the profile id (got {layer['id']!r})")
        data = _merge(data, layer)
    try:
        return StandardProfile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_problems(exc, where)) from None


def _raw_or_error(profile_id: str, where: str) -> dict[str, Any]:
    try:
        return _raw(profile_id)
    except KeyError:
        key = f"{where.removesuffix('.overrides')}.profile" if where.endswith(".overrides") else where
        raise ConfigError(
            f"{key}: unknown standard profile {profile_id!r}; known: {sorted(_profile_files())}"
        ) from None
