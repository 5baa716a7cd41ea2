"""The ``[reports.schedule]`` table: which reports ``archmon run`` makes by itself, where they are kept and who
receives them by e-mail.

```toml
[reports.schedule]
enabled = true         # monthly reports and registers are made unless this is false
periods = ["monthly"]  # monthly | weekly (Monday–Sunday) | quarterly
formats = ["pdf"]      # pdf | json | csv, each kept (and mailed) for every period
registers = true       # the monthly 温湿度登记表 too (monthly periods only)
languages = []         # zh | en; default: the site's language
rooms = []             # default: every room (the outdoor room is left out of the register)
after_h = 2            # made this many hours after a period ends, so late readings are in
catch_up = 3           # after a stop, at most this many missed periods of each kind are made up
directory = "reports"  # relative: beside the database (the data directory)
email_channel = ""     # a [notify.channels] table of type "smtp"; empty: no e-mail
email_to = []          # contact names of [[notify.contacts]] (their e-mail) or e-mail addresses
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PeriodKind", "ScheduleSettings"]

PeriodKind = Literal["monthly", "weekly", "quarterly"]


class ScheduleSettings(BaseModel):
    """Validated ``[reports.schedule]`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    periods: list[PeriodKind] = Field(default_factory=lambda: ["monthly"])
    formats: list[Literal["pdf", "json", "csv"]] = Field(default_factory=lambda: ["pdf"])
    registers: bool = True
    languages: list[Literal["zh", "en"]] = Field(default_factory=list)
    rooms: list[str] = Field(default_factory=list)
    after_h: float = Field(default=2.0, ge=0, le=24 * 7)
    catch_up: int = Field(default=3, ge=1, le=24)
    directory: Path = Path("reports")
    email_channel: str = ""
    email_to: list[str] = Field(default_factory=list)

    @field_validator("periods", "formats", "languages", "rooms", "email_to")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))
