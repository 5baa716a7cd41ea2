"""The room page's switched devices (climate control): state, since when, manual override, run time in the
page's range, read from the database (``control_switches``, ``control_overrides``) on the dashboard's
read-only connections, so it shows the same with or without a running controller."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import NamedTuple

import pydantic

from alerts.control.settings import ActuatorConfig
from dashboards.web.context import WebContext

__all__ = ["DeviceRow", "RunSpan", "room_devices", "room_runs"]


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device of a room as the page shows it.

    Attributes:
        id, name_zh, name_en, controls: which device (names may be empty: the id is shown) and what it does
            (``humidity_down``...).
        state: ``on``, ``off`` or ``unknown`` (never switched or read back yet).
        since_ms: when it took that state.
        run_ms: how long it ran within the page's range.
        override_state, override_until_ms, override_by, override_reason: an active manual override.
    """

    id: str
    name_zh: str
    name_en: str
    controls: str
    state: str
    since_ms: int | None
    run_ms: int
    override_state: str | None = None
    override_until_ms: int | None = None
    override_by: str | None = None
    override_reason: str | None = None


class RunSpan(NamedTuple):
    """A time a device ran (``end_ms`` None: still running at the range's end)."""

    actuator: str
    start_ms: int
    end_ms: int | None


def _actuators(ctx: WebContext, room_id: str) -> list[ActuatorConfig]:
    out = []
    for table in ctx.config.actuators:
        try:
            actuator = ActuatorConfig.model_validate(table)
        except pydantic.ValidationError:
            continue  # check-config reports it; the page shows the valid ones
        if actuator.room == room_id and actuator.enabled:
            out.append(actuator)
    return out


def room_devices(ctx: WebContext, room_id: str, start_ms: int, end_ms: int) -> list[DeviceRow]:
    """The room's enabled actuators with their state and run time in ``[start_ms, end_ms)``."""
    actuators = _actuators(ctx, room_id)
    if not actuators:
        return []
    rows = []
    with ctx.readers.read() as conn:
        for actuator in actuators:
            try:
                rows.append(_row(conn, actuator, start_ms, end_ms))
            except sqlite3.OperationalError:  # no control tables yet (nothing switched so far)
                rows.append(DeviceRow(actuator.id, actuator.name_zh, actuator.name_en, actuator.controls, "unknown",
                                      None, 0))
    return rows


def _row(conn: sqlite3.Connection, actuator: ActuatorConfig, start_ms: int, end_ms: int) -> DeviceRow:
    ident = actuator.id
    last = conn.execute("SELECT ts_ms, state FROM control_switches WHERE actuator = ? AND ts_ms < ? "
                        "ORDER BY ts_ms DESC, seq DESC LIMIT 1", (ident, end_ms)).fetchone()
    before = conn.execute("SELECT state FROM control_switches WHERE actuator = ? AND ts_ms < ? "
                          "ORDER BY ts_ms DESC, seq DESC LIMIT 1", (ident, start_ms)).fetchone()
    on, since, run = bool(before and before[0]), start_ms, 0
    for ts, state in conn.execute("SELECT ts_ms, state FROM control_switches WHERE actuator = ? AND ts_ms >= ? "
                                  "AND ts_ms < ? ORDER BY ts_ms, seq", (ident, start_ms, end_ms)):
        if on:
            run += ts - since
        on, since = bool(state), ts
    if on:
        run += end_ms - since
    override = conn.execute("SELECT state, until_ms, by, reason FROM control_overrides WHERE actuator = ? AND "
                            "ended_ms IS NULL AND start_ms <= ? AND until_ms > ? ORDER BY id DESC LIMIT 1",
                            (ident, end_ms, end_ms)).fetchone()
    state = "unknown" if last is None else ("on" if last[1] else "off")
    return DeviceRow(ident, actuator.name_zh, actuator.name_en, actuator.controls, state,
                     None if last is None else last[0], run,
                     *(override if override else (None, None, None, None)))


def room_runs(ctx: WebContext, room_id: str, start_ms: int, end_ms: int, limit: int = 500) -> list[RunSpan]:
    """When the room's enabled devices ran within ``[start_ms, end_ms)`` (chart markers), each device's newest
    ``limit`` runs, from the confirmed switches (``control_switches``); a run that began before the range
    starts at its start."""
    out: list[RunSpan] = []
    actuators = _actuators(ctx, room_id)
    if not actuators:
        return out
    with ctx.readers.read() as conn:
        for actuator in actuators:
            try:
                out.extend(_runs(conn, actuator.id, start_ms, end_ms)[-limit:])
            except sqlite3.OperationalError:  # no control tables yet
                continue
    return out


def _runs(conn: sqlite3.Connection, ident: str, start_ms: int, end_ms: int) -> list[RunSpan]:
    before = conn.execute("SELECT state FROM control_switches WHERE actuator = ? AND ts_ms < ? "
                          "ORDER BY ts_ms DESC, seq DESC LIMIT 1", (ident, start_ms)).fetchone()
    runs: list[RunSpan] = []
    began = start_ms if before and before[0] else None
    for ts, state in conn.execute("SELECT ts_ms, state FROM control_switches WHERE actuator = ? AND ts_ms >= ? "
                                  "AND ts_ms < ? ORDER BY ts_ms, seq", (ident, start_ms, end_ms)):
        if state and began is None:
            began = ts
        elif not state and began is not None:
            runs.append(RunSpan(ident, began, ts))
            began = None
    if began is not None:
        runs.append(RunSpan(ident, began, None))
    return runs
