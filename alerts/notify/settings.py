"""The ``[notify]`` table: channels (named, each validated by its own kind), contacts, routes, outbox policy.

Example (every option: ``alerts/notify/notify.sample.toml``, explained in ``docs/notify.md``)::

    [notify.channels.modem]
    type = "gsm_modem"
    port = "/dev/ttyUSB2"

    [[notify.contacts]]
    name = "zhang"
    phone = "+8613800000001"

    [[notify.routes]]
    name = "all"
    levels = [{ contacts = ["zhang"], channels = ["modem"] }]

:func:`load_notify` validates it against the rest of the configuration (rooms, the channel kinds'
schemas) and returns a :class:`NotifyPlan`. :func:`notify_problems` is what ``check-config`` reports
(strict: a secret missing from the environment or its file is a problem); :func:`run_problems` what
``archmon run`` refuses to start with (the same without the secrets: a channel whose secret is missing fails
at run time — logged, marked down, its "channel down" alert sent through the others — and the rest of the
service runs).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.notify.channels import CHANNELS, Channel, ChannelOptions
from alerts.settings import SEVERITIES, Severity
from archmon.config import Config
from archmon.errors import ConfigError

__all__ = ["ContactConfig", "LevelConfig", "NotifyConfig", "NotifyPlan", "RetryConfig", "RouteConfig", "TimeRange",
           "build_channels", "load_notify", "normalise_phone", "notify_problems", "run_problems"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``HH:MM-HH:MM`` in the site's zone; a start after the end crosses midnight (``22:00-07:00``)."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """Parse ``HH:MM-HH:MM`` (``24:00`` allowed as an end).

        Raises:
            ValueError: not that form.
        """
        match = _RANGE.match(text)
        if not match:
            raise ValueError(f"time range must look like 22:00-07:00, got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"not a time of day in {text!r}")
        end = dt.time(23, 59, 59, 999999) if h2 == 24 else dt.time(h2, m2)
        return cls(dt.time(h1, m1), end)

    def contains(self, moment: dt.datetime) -> bool:
        """Whether a local time falls inside."""
        now = moment.time()
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def end_after(self, moment: dt.datetime) -> dt.datetime:
        """The first end of this range at or after ``moment`` (local, same zone)."""
        candidate = moment.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        return candidate if candidate > moment else candidate + dt.timedelta(days=1)


def normalise_phone(number: str) -> str:
    """Digits only, without the +86/0086 country prefix of an 11-digit mobile number, for comparing."""
    digits = re.sub(r"\D", "", number)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix):]
    return digits


class ContactConfig(_Model):
    """A person who receives notifications.

    Attributes:
        name: short id used in routes and logs (``zhang``).
        display: the name shown in audit entries (``张三``; default: ``name``).
        phone: mobile number for SMS (``+8613800000001``); replies from it can acknowledge alerts.
        email: e-mail address.
        chat: chat ids by robot type for @-mentions (``feishu = "ou_..."``; DingTalk/WeCom mention by phone).
        language: ``zh`` or ``en`` (default: the site's).
    """

    name: str = Field(pattern=_NAME)
    display: str = ""
    phone: str | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    chat: dict[str, str] = Field(default_factory=dict)
    language: Literal["zh", "en"] | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\+?[0-9 \-]{3,24}", value):
            raise ValueError(f"not a phone number: {value!r} (digits, optionally a leading +)")
        return value

    @property
    def label(self) -> str:
        """The name people read."""
        return self.display or self.name


class LevelConfig(_Model):
    """One escalation level of a route: who, through which channels."""

    contacts: list[str] = Field(default_factory=list)
    channels: list[str] = Field(min_length=1)


class RouteConfig(_Model):
    """Which requests go where.

    Attributes:
        name: names the route in logs and groups its messages.
        severities / rooms / rules: what it takes (empty: everything).
        when: ``always``, ``working_hours`` or ``off_hours`` (the site's ``[alerts.working_hours]``).
        hours: only at these times of day (``08:00-20:00``), besides ``when``.
        quiet_hours: non-critical requests wait until the end of these hours; critical ones never wait.
        levels: escalation level 0, 1, ... → contacts and channels (a level past the last uses the last).
    """

    name: str = Field(pattern=_NAME)
    severities: list[Severity] = Field(default_factory=lambda: list(SEVERITIES))
    rooms: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    when: Literal["always", "working_hours", "off_hours"] = "always"
    hours: str | None = None
    quiet_hours: str | None = None
    levels: list[LevelConfig] = Field(min_length=1)

    @field_validator("hours", "quiet_hours")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            TimeRange.parse(value)
        return value


class RetryConfig(_Model):
    """Retries of a failed delivery: wait ``backoff_s[n]`` after the n-th failure (the last value repeats),
    give up after ``max_attempts`` (0: never; the request is an alarm)."""

    backoff_s: list[float] = Field(default_factory=lambda: [10.0, 30.0, 60.0, 120.0, 300.0, 600.0], min_length=1)
    max_attempts: int = Field(default=30, ge=0)

    def delay_s(self, failures: int) -> float:
        """Wait after the ``failures``-th failure (1-based)."""
        return self.backoff_s[min(failures, len(self.backoff_s)) - 1]


class NotifyConfig(_Model):
    """The validated ``[notify]`` table (channel tables are checked by their kinds; see :func:`load_notify`).

    Attributes:
        enabled: whether ``archmon run`` sends at all.
        language: of messages (default: the site's); a contact's own ``language`` wins.
        group_window_s: requests of one route arriving within this window go out as one message.
        group_exempt: severities never held back for grouping (smoke and leak never are, whatever this says).
        poll_s: how often the request queue is looked at besides the event hub's wake-ups.
        retry: backoff of failed deliveries.
        down_after_failures: a channel failing this many times in a row is "down" (raises an alert).
        down_after_s: a channel whose own check (the modem: SIM, network) fails this long is down too.
        expire_after_s: requests older than this when first seen are not sent (a notifier configured after
            weeks of queued requests must not flood people with old news); 0: never expire.
        help_reply_interval_s: at most one help reply per phone number in this time (no loops with robots).
        help_replies_per_hour: at most this many help replies in an hour, to all numbers together (a flood
            of texts from many unknown numbers must not cost a flood of SMS).
        sms_max_parts: SMS texts are shortened to fit this many parts when they can be.
        retention_days: settled deliveries, their attempts and received SMS are deleted after this many
            days by the service's hourly retention job (0: kept for ever).
    """

    enabled: bool = True
    language: Literal["zh", "en"] | None = None
    group_window_s: float = Field(default=30.0, ge=0)
    group_exempt: list[Severity] = Field(default_factory=lambda: ["critical"])
    poll_s: float = Field(default=0.25, gt=0, le=60)
    retry: RetryConfig = RetryConfig()
    down_after_failures: int = Field(default=3, ge=1)
    down_after_s: float = Field(default=120.0, ge=0)
    expire_after_s: float = Field(default=86400.0, ge=0)
    help_reply_interval_s: float = Field(default=3600.0, ge=0)
    help_replies_per_hour: int = Field(default=20, ge=0)
    sms_max_parts: int = Field(default=2, ge=1, le=10)
    retention_days: float = Field(default=90.0, ge=0)
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    contacts: list[ContactConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)

    def contact(self, name: str) -> ContactConfig:
        """The contact with this name (KeyError if none)."""
        for contact in self.contacts:
            if contact.name == name:
                return contact
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class NotifyPlan:
    """Everything the notifier runs from: the table, each channel's kind and validated options."""

    config: NotifyConfig
    channel_types: dict[str, str]
    channel_options: dict[str, ChannelOptions]

    @property
    def active(self) -> bool:
        """Whether there is anything to send through."""
        return self.config.enabled and bool(self.channel_options)


def _pydantic_problems(exc: pydantic.ValidationError, prefix: str) -> list[str]:
    out = []
    for err in exc.errors():
        key = prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"])
        message = "unknown option" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
        out.append(f"{key}: {message}{got}")
    return out


def load_notify(config: Config) -> NotifyPlan:
    """Validate ``[notify]`` (schema, channel kinds, references to rooms, contacts and channels).

    Raises:
        ConfigError: one line per problem, ``notify.key.path: message (got VALUE)``.
    """
    raw = getattr(config, "notify", {}) or {}
    problems: list[str] = []
    types: dict[str, str] = {}
    options: dict[str, ChannelOptions] = {}
    channels = raw.get("channels", {}) if isinstance(raw, dict) else {}
    for name, spec in (channels.items() if isinstance(channels, dict) else []):
        where = f"notify.channels.{name}"
        if not re.match(_NAME, name):
            problems.append(f"{where}: channel names are letters, digits, _ . - (got {name!r})")
        kind = spec.get("type") if isinstance(spec, dict) else None
        cls = CHANNELS.get(str(kind))
        if cls is None:
            problems.append(f"{where}.type: unknown channel type {kind!r}; known: {sorted(CHANNELS)}")
            continue
        try:
            options[name] = cls.Options.model_validate({k: v for k, v in spec.items() if k != "type"})
            types[name] = str(kind)
        except pydantic.ValidationError as exc:
            problems += _pydantic_problems(exc, where)
    try:
        table = NotifyConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(problems + _pydantic_problems(exc, "notify")) from None
    problems += _reference_problems(table, config, types)
    if problems:
        raise ConfigError(problems)
    return NotifyPlan(table, types, options)


def _reference_problems(table: NotifyConfig, config: Config, types: dict[str, str]) -> list[str]:
    problems: list[str] = []
    contacts = {c.name: c for c in table.contacts}
    if len(contacts) != len(table.contacts):
        problems.append("notify.contacts: two contacts share a name")
    rooms = {r.id for r in config.rooms}
    for i, route in enumerate(table.routes):
        where = f"notify.routes[{i}] ({route.name})"
        for room in route.rooms:
            if room not in rooms:
                problems.append(f"{where}.rooms: unknown room {room!r}; known: {sorted(rooms)}")
        for j, level in enumerate(route.levels):
            for channel in level.channels:
                if channel not in table.channels:
                    problems.append(f"{where}.levels[{j}].channels: unknown channel {channel!r}; "
                                    f"known: {sorted(table.channels)}")
            for name in level.contacts:
                contact = contacts.get(name)
                if contact is None:
                    problems.append(f"{where}.levels[{j}].contacts: unknown contact {name!r}; "
                                    f"known: {sorted(contacts)}")
                    continue
                kinds = [CHANNELS[types[c]] for c in level.channels if c in types]
                if kinds and not any(k.address_field is None or getattr(contact, k.address_field) for k in kinds):
                    problems.append(f"{where}.levels[{j}].contacts: {name!r} has no "
                                    f"{'/'.join(sorted({k.address_field or '' for k in kinds}))} for any of the "
                                    f"channels {level.channels}: nothing would reach them")
    if table.enabled and types and not any("critical" in r.severities for r in table.routes):
        problems.append("notify.routes: no route takes critical alerts (smoke, water): they would reach nobody")
    return problems


def build_channels(plan: NotifyPlan, **kwargs: Any) -> dict[str, Channel]:
    """One channel object per configured channel (no network touched)."""
    return {name: CHANNELS[plan.channel_types[name]](name, opts, **kwargs)
            for name, opts in plan.channel_options.items()}


def notify_problems(config: Config, *, secrets: bool = True) -> list[str]:
    """What ``check-config`` reports about ``[notify]``: schema, references, and (``secrets``) secrets that
    are missing from the environment or their files (that channel would fail to send)."""
    try:
        plan = load_notify(config)
    except ConfigError as exc:
        return list(exc.problems)
    if not plan.config.enabled or not secrets:
        return []
    problems = []
    for channel in build_channels(plan).values():
        problems += channel.secrets()
    return problems


def run_problems(config: Config) -> list[str]:
    """What ``archmon run`` (start and reload) refuses: schema and references only. A missing secret is not
    among them: that one channel fails at run time, the service runs."""
    return notify_problems(config, secrets=False)
