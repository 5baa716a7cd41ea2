"""The config file of a report test site, built from its parts: the site, its rooms, its sensors.

Every report test site reads nothing itself: its sensors sit on one serial line source ``bus`` whose
device does not exist (the tests write readings through the store), and its HTTP server is off. Only the
site's name and zone, the rooms, the sensors (names, kinds, intervals, calibration records) and the
``[reports]`` table differ from one test site to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from archmon.config import Config, load_config

__all__ = ["Calibration", "room_toml", "sensor_toml", "write_site_config"]


class Calibration(NamedTuple):
    """One calibration record of a sensor's quantity (``[sensors.calibration.<quantity>]``)."""

    quantity: str
    calibrated_on: str
    certificate: str


def room_toml(room: str, *, name_zh: str, name_en: str | None = None, profile: str | None = None,
              overrides: str | None = None) -> str:
    """The TOML of one room.

    Args:
        room: the room's id.
        name_zh / name_en: its names (no English name: the key is left out).
        profile: its standards profile (None: the site's default).
        overrides: an inline TOML table for ``overrides`` (``{ stability = { ... } }``).
    """
    return _table("[[rooms]]", id=room, name_zh=name_zh, name_en=name_en, profile=profile) + (
        f"overrides = {overrides}\n" if overrides is not None else "")


def sensor_toml(sensor: str, room: str, *, name: str | None = None, kind: str | None = None,
                interval_s: int | None = None, calibrations: Sequence[Calibration] = ()) -> str:
    """The TOML of one sensor on the serial line ``bus``, with its calibration records.

    Args:
        sensor: the sensor's id.
        room: the room it is in.
        name: its display name (None: none).
        kind: its kind (None: the default, temperature and humidity).
        interval_s: its ``expected_interval_s`` (None: the default).
        calibrations: its calibration records, one per quantity.
    """
    out = _table("[[sensors]]", id=sensor, room=room, source="bus", name=name, kind=kind)
    if interval_s is not None:
        out += f"expected_interval_s = {interval_s}\n"
    for record in calibrations:
        out += _table(f"[sensors.calibration.{record.quantity}]", calibrated_on=record.calibrated_on,
                      certificate=record.certificate)
    return out


def write_site_config(folder: Path, *, name: str, timezone: str, rooms: Sequence[str], sensors: Sequence[str],
                      language: str | None = None, sqlite_path: str = "site.db", reports: str | None = None,
                      extra: str = "") -> Config:
    """Write ``folder/archmon.toml`` and load it.

    Args:
        folder: where the file goes (the store's path is relative to it).
        name / timezone / language: the ``[site]`` table (no language: the key is left out).
        rooms: the rooms' TOML (:func:`room_toml`).
        sensors: the sensors' TOML (:func:`sensor_toml`).
        sqlite_path: the store's file.
        reports: the body of ``[reports]`` (None: no such table; it may open sub-tables of its own).
        extra: TOML appended after the sensors (``[[actuators]]``, ``[notify]``...).

    Returns:
        The loaded config.
    """
    path = folder / "archmon.toml"
    path.write_text(
        _table("[site]", name=name, timezone=timezone, language=language)
        + _table("[storage]", sqlite_path=sqlite_path)
        + "[http]\nenabled = false\n"
        + (f"[reports]\n{reports}\n" if reports is not None else "")
        + "".join(rooms)
        + _table("[[serial]]", id="bus", device=str(folder / "no-port"), protocol="line")
        + "line_pattern = '(?P<sensor>\\w+) T=(?P<temperature>[\\d.]+)'\n"
        + "".join(sensors)
        + extra + "\n", encoding="utf-8")
    return load_config(path)


def _table(header: str, **strings: str | None) -> str:
    """A TOML table of string values; the None ones are left out."""
    return header + "\n" + "".join(f'{key} = "{value}"\n' for key, value in strings.items() if value is not None)
