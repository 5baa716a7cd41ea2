"""The handful of exception classes archmon raises, grouped by what the caller should do."""

from __future__ import annotations

__all__ = [
    "ArchmonError",
    "ConfigError",
    "DecodeError",
    "DeviceBusy",
    "NotSensorData",
    "PartialWrite",
    "RetryLater",
    "TransportError",
    "ValidationError",
]


class ArchmonError(Exception):
    """Base class of every error archmon raises on purpose."""


class ConfigError(ArchmonError):
    """The configuration is wrong; fatal at start-up.

    Args:
        problems: one line per problem, each naming the file, the key path and the bad value.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DecodeError(ArchmonError):
    """A payload could not be decoded; the message says why. The raw payload goes to quarantine."""


class NotSensorData(DecodeError):
    """A well-formed message that carries no measurement: device status, commands, diagnostics.

    The pipeline counts these as ``ignored`` instead of quarantining them.
    """


class ValidationError(ArchmonError):
    """A decoded value is physically impossible or of the wrong type."""


class RetryLater(ArchmonError):
    """A transient failure (store busy, broker unreachable): retry with backoff."""


class DeviceBusy(RetryLater):
    """A device did not answer in time or answered with an error; poll it again next interval."""


class TransportError(RetryLater):
    """A connection or port was lost; reconnect."""


class PartialWrite(RetryLater):
    """Only part of a batch was written; the rest must be retried."""
