"""What the alert commands share: loading the configuration and the store, and text for people (times in
the site's zone with their offset, columns that hold Chinese text)."""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.store import AlertReader, AlertStore
from archmon.config import Config, load_config
from archmon.timeutil import parse_iso_ms

__all__ = ["config_path", "fail", "iso_option", "language_of", "load", "local_time", "pad", "reader_for",
           "store_for", "table", "unknown_room", "width", "with_store", "with_times"]


def load(args: argparse.Namespace) -> Config:
    """The configuration named by ``--config`` (see :func:`config_path`)."""
    return load_config(config_path(args))


def store_for(config: Config) -> AlertStore:
    """The alert store of the configuration's database (for commands that write)."""
    return AlertStore(config.resolve(config.storage.sqlite_path))


def reader_for(config: Config) -> AlertReader | None:
    """Read-only access (never waits on the running engine); None if the database does not exist yet."""
    path = config.resolve(config.storage.sqlite_path)
    return AlertReader(path) if path.is_file() else None


def config_path(args: argparse.Namespace) -> Path:
    """``--config``, else ``$ARCHMON_CONFIG``, else ``./archmon.toml``."""
    given = getattr(args, "config", None)
    return Path(given or os.environ.get("ARCHMON_CONFIG") or "archmon.toml")


def fail(message: str, code: int = 2) -> int:
    """Print ``archmon: message`` on stderr; returns the exit code."""
    print(f"archmon: {message}", file=sys.stderr)
    return code


def with_store(args: argparse.Namespace) -> tuple[Config, AlertStore]:
    """The configuration and its alert store (for commands that write)."""
    config = load(args)
    return config, store_for(config)


def with_times(row: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A row for JSON: every ``*_ms`` time also as ``*_at``, ISO-8601 in the site's zone with its offset."""
    out = dict(row)
    for key, value in row.items():
        if key.endswith("_ms") and isinstance(value, int) and not isinstance(value, bool):
            out[key[:-3] + "_at"] = local_time(value, tz)
    return out


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows padded to column widths (Chinese characters take two columns); the last column is not padded."""
    widths = [max(width(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(pad(cell, columns) for cell, columns in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
            for row in rows]


def language_of(config: Config) -> str:
    """The language of alert texts: ``[alerts] language``, else the site's (as the engine's titles)."""
    language = config.alerts.get("language") if isinstance(config.alerts, dict) else None
    return language if language in ("zh", "en") else config.site.language


def iso_option(option: str, text: str, tz: ZoneInfo) -> int:
    """Parse the ISO-8601 value of ``option`` (site zone if no offset).

    Raises:
        ValueError: one line naming the option and the text given.
    """
    try:
        return parse_iso_ms(text, tz)
    except ValueError:
        raise ValueError(f"{option}: not an ISO-8601 time: {text!r} (e.g. 2024-03-04T17:30)") from None


def local_time(ts_ms: int, tz: ZoneInfo) -> str:
    """A time for people: ISO-8601 in the site's zone, to the second (``2024-03-04T17:30:00+08:00``)."""
    return datetime.fromtimestamp(ts_ms / 1000, tz).isoformat(timespec="seconds")


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal (Chinese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad(text: str, columns: int) -> str:
    """``text`` padded with spaces to ``columns`` terminal columns."""
    return text + " " * max(0, columns - width(text))


def unknown_room(room: str, config: Config) -> str:
    """The message for a room id the configuration does not know, naming the known ones."""
    known = ", ".join(sorted(r.id for r in config.rooms)) or "none configured"
    return f"unknown room {room!r} (known rooms: {known})"


