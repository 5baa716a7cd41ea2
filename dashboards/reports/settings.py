"""The ``[reports]`` table of the site config: the logging duty times, what counts as a day with enough data,
and the names on the signature block.

```toml
[reports]
duty_times = ["08:00", "14:00"]   # the 1987 rule: readings at least twice a day
duty_tolerance_min = 30           # a reading within ± this many minutes of a duty time counts
sufficient_pct = 50               # a day with at least this completeness counts as having enough data
prepared_by = ""                  # names printed on the signature block (may be left empty)
reviewed_by = ""
pass_completeness_pct = 90        # the printed summary's pass criteria (stated on the report)
pass_in_band_pct = 95
outdoor_room = ""                 # a room whose sensors measure outdoors: its values beside the register's
```

``[reports.schedule]`` (reports made by ``archmon run``):
:class:`dashboards.reports.schedule_settings.ScheduleSettings`.
"""

from __future__ import annotations

import datetime as dt

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from archmon.config import Config
from archmon.errors import ConfigError
from dashboards.reports.schedule_settings import ScheduleSettings

__all__ = ["ReportSettings", "check_config", "load_settings"]


class ReportSettings(BaseModel):
    """Validated ``[reports]`` settings (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duty_times: list[dt.time] = Field(default_factory=lambda: [dt.time(8, 0), dt.time(14, 0)])
    duty_tolerance_min: float = Field(default=30.0, gt=0, le=720)
    sufficient_pct: float = Field(default=50.0, gt=0, le=100)
    prepared_by: str = ""
    reviewed_by: str = ""
    pass_completeness_pct: float = Field(default=90.0, ge=0, le=100)
    pass_in_band_pct: float = Field(default=95.0, ge=0, le=100)
    outdoor_room: str = ""
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    @field_validator("duty_times")
    @classmethod
    def _some_times(cls, value: list[dt.time]) -> list[dt.time]:
        if not value:
            raise ValueError("give at least one duty time, e.g. [\"08:00\", \"14:00\"]")
        return sorted(set(value))


def load_settings(config: Config) -> ReportSettings:
    """Validate ``[reports]``.

    Raises:
        ConfigError: one line per problem, ``reports.key: message (got VALUE)``.
    """
    try:
        return ReportSettings.model_validate(config.reports)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in ("reports", *err["loc"]))
            message = "unknown option" if err["type"] == "extra_forbidden" else err["msg"].removeprefix(
                "Value error, ")
            problems.append(f"{key}: {message} (got {err['input']!r})")
        raise ConfigError(problems) from None


def check_config(config: Config) -> list[str]:
    """Problems in ``[reports]`` (empty when it is fine): the table, the outdoor room, the schedule's rooms,
    e-mail channel and recipients."""
    try:
        settings = load_settings(config)
        rooms = {room.id for room in config.rooms}
        problems = []
        if settings.outdoor_room and settings.outdoor_room not in rooms:
            problems.append(f"reports.outdoor_room: no room {settings.outdoor_room!r} (rooms: {sorted(rooms)})")
        unknown = sorted(set(settings.schedule.rooms) - rooms)
        if unknown:
            problems.append(f"reports.schedule.rooms: unknown room(s) {unknown} (rooms: {sorted(rooms)})")
        if problems:
            return problems
        from dashboards.reports.schedule import ReportSchedule  # (it imports this module)

        ReportSchedule(config)  # resolves the recipients and the smtp channel
    except ConfigError as exc:
        return list(exc.problems)
    return []
