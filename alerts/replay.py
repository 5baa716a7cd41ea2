"""Replay: judge history without waiting for it.

Timestamped readings go through the real engine in simulated time (no wall clock, no sleeping); every
alert transition comes out as one JSON object per line. Actions (acknowledge, clear by hand, maintenance,
restart) can be interleaved, which is how the data-driven rule tests exercise the lifecycle.

A replay has no readings store: at a restart the new engine rebuilds its windows and rule memory from the
rows replayed so far (:class:`alerts.history.MemoryHistory`), as the live service rebuilds from the store.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.catchup import save_watermarks
from alerts.engine import AlertEngine
from alerts.history import MemoryHistory
from alerts.model import Transition
from alerts.store import AlertStore
from archmon.config import Config, parse_config
from archmon.domain import Reading
from archmon.errors import ConfigError
from archmon.timeutil import parse_iso_ms

__all__ = ["ReplayAction", "ReplayRow", "infer_intervals", "profile_config", "read_readings_csv", "run_replay"]

_PRUNE_EVERY = 50_000
"""Rows between two prunings of the replay's in-memory store."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One CSV row: a reading, or an availability message when ``quantity`` is ``availability``."""

    ts_ms: int
    sensor: str
    quantity: str
    value: float | None
    text: str = ""


@dataclass(frozen=True, slots=True)
class ReplayAction:
    """Something a person or the operating system does at ``ts_ms`` during a replay.

    Attributes:
        do: ``ack``, ``clear``, ``maintenance``, ``end_maintenance``, ``restart`` or ``crash`` (the same for
            the engine, which persists only lifecycle state and rebuilds the rest from the readings: here the
            rows replayed so far).
        args: ``alert``/``by``/``comment`` for ack and clear; ``room``/``until``/``reason``/``by`` for
            maintenance (``until`` ISO-8601); ``window``/``by``/``comment`` for end_maintenance.
    """

    ts_ms: int
    do: str
    args: dict[str, Any] = field(default_factory=dict)


def read_readings_csv(path: Path, tz: ZoneInfo) -> list[ReplayRow]:
    """Read ``ts,sensor,quantity,value`` rows, sorted by time (stable).

    Raises:
        ConfigError: a missing column or a bad row, naming the file and line.
    """
    rows: list[ReplayRow] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"ts", "sensor", "quantity", "value"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{path}: missing column(s) {sorted(missing)}; need ts,sensor,quantity,value")
        for line, row in enumerate(reader, start=2):
            try:
                ts = parse_iso_ms(row["ts"], tz)
                quantity = row["quantity"].strip()
                if quantity == "availability":
                    rows.append(ReplayRow(ts, row["sensor"].strip(), quantity, None, row["value"].strip()))
                else:
                    value = float(row["value"])
                    if not math.isfinite(value):  # as the live path: nan/inf is not a measurement
                        raise ValueError(f"value {row['value'].strip()!r} is not a finite number")
                    rows.append(ReplayRow(ts, row["sensor"].strip(), quantity, value))
            except (ValueError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{path}:{line}: bad row {row!r}: {exc}") from None
    rows.sort(key=lambda r: r.ts_ms)
    return rows


def infer_intervals(rows: Iterable[ReplayRow]) -> dict[str, float]:
    """Each sensor's expected interval in seconds: the median gap between its distinct timestamps."""
    stamps: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        if row.quantity != "availability":
            stamps[row.sensor].add(row.ts_ms)
    out = {}
    for sensor, values in stamps.items():
        ordered = sorted(values)
        gaps = [b - a for a, b in itertools.pairwise(ordered)]
        out[sensor] = max(statistics.median(gaps) / 1000, 1.0) if gaps else 300.0
    return out


def profile_config(
    profile_id: str, rows: Sequence[ReplayRow], tz: str, *, room: str = "room",
    overrides: dict[str, Any] | None = None, alerts: dict[str, Any] | None = None,
) -> Config:
    """A configuration with one room using ``profile_id`` and every sensor of the CSV in it.

    Raises:
        ConfigError: unknown profile or invalid sensor names.
    """
    intervals = infer_intervals(rows)
    data = {
        "site": {"name": "replay", "timezone": tz},
        "rooms": [{"id": room, "profile": profile_id, "overrides": overrides or {}}],
        "mqtt": [{"id": "replay"}],
        "sensors": [
            {"id": sensor, "room": room, "kind": "multi", "source": "replay", "topic": f"replay/{sensor}",
             "format": "replay", "expected_interval_s": interval}
            for sensor, interval in sorted(intervals.items())
        ],
        "alerts": alerts or {},
    }
    return parse_config(data, source=f"--profile {profile_id}")


def run_replay(
    rows: Sequence[ReplayRow], config: Config, *, db_path: Path | str = ":memory:",
    actions: Sequence[ReplayAction] = (), until_ms: int | None = None,
    emit: Callable[[Transition], None] | None = None,
) -> list[Transition]:
    """Feed rows (and actions) through the engine in time order; return every transition.

    An action at time T runs after the rows stamped at or before T. ``until_ms`` runs timers on to
    that time after the last row (daily verdicts of the last day, a stale sensor at the end).

    Raises:
        ConfigError: a restart with an in-memory database, or a bad action.
    """
    restarts = any(a.do in ("restart", "crash") for a in actions)
    if restarts and str(db_path) == ":memory:":
        raise ConfigError("a replay with restarts needs a database file (--db)")
    out: list[Transition] = []

    def keep(transitions: list[Transition]) -> None:
        for transition in transitions:
            out.append(transition)
            if emit is not None:
                emit(transition)

    store = AlertStore(db_path)
    engine = AlertEngine(config, store)
    stored = engine.history.source = MemoryHistory((), config.site.tz)  # the rows so far, as a store has them
    # what a rebuild (two days, the stuck rule's hours) or a late reading's look-up may need of them
    keep_ms, kept = max(2 * 24, int(engine.settings.stuck.hours) + 26) * 3_600_000, 0
    known = set(engine.sensors)
    warned: set[str] = set()
    pending = sorted(actions, key=lambda a: a.ts_ms)
    index = 0
    try:
        for row in [*rows, None]:
            while index < len(pending) and (row is None or pending[index].ts_ms < row.ts_ms):
                engine, store = _act(engine, store, config, db_path, pending[index], keep, stored)
                index += 1
            if row is None:
                break
            if row.sensor not in known:
                if row.sensor not in warned:
                    log.warning("replay: sensor %r is not in the configuration; its rows are skipped", row.sensor)
                    warned.add(row.sensor)
                continue
            if row.quantity == "availability":
                keep(engine.availability(row.sensor, row.text, row.ts_ms))
            else:
                room = engine.sensors[row.sensor].room
                assert row.value is not None
                reading = Reading(row.sensor, row.quantity, row.value, row.ts_ms, room)
                stored.add(reading)
                kept += 1
                if kept % _PRUNE_EVERY == 0:
                    stored.prune(reading.ts_ms - keep_ms)
                keep(engine.feed(reading))
        if until_ms is not None:
            keep(engine.advance(until_ms))
    finally:
        store.close()
    return out


def _act(
    engine: AlertEngine, store: AlertStore, config: Config, db_path: Path | str, action: ReplayAction,
    keep: Callable[[list[Transition]], None], stored: MemoryHistory,
) -> tuple[AlertEngine, AlertStore]:
    keep(engine.advance(action.ts_ms))
    args = action.args
    try:
        if action.do == "ack":
            keep(engine.acknowledge(int(args["alert"]), args.get("by", "replay"), args.get("comment", ""),
                                    action.ts_ms))
        elif action.do == "clear":
            keep(engine.clear(int(args["alert"]), args.get("by", "replay"), args.get("comment", ""), action.ts_ms))
        elif action.do == "maintenance":
            until = parse_iso_ms(str(args["until"]), engine.tz)
            engine.maintenance(args["room"], until, args.get("reason", ""), args.get("by", "replay"), action.ts_ms)
        elif action.do == "end_maintenance":
            keep(engine.end_maintenance(int(args["window"]), args.get("by", "replay"), args.get("comment", ""),
                                        action.ts_ms))
        elif action.do in ("restart", "crash"):
            if action.do == "restart":  # a clean stop saves how far it judged; a crash leaves it behind
                with store.batch():
                    save_watermarks(engine.series, store)
            store.close()
            store = AlertStore(db_path)
            engine = AlertEngine(config, store)
            engine.rebuild(stored, action.ts_ms)
            engine.history.source = stored
            with store.batch():
                keep(engine.catch_up(action.ts_ms))
            keep(engine.advance(action.ts_ms))
        else:
            raise ConfigError(f"unknown replay action {action.do!r} "
                              "(ack, clear, maintenance, end_maintenance, restart, crash)")
    except KeyError as exc:
        raise ConfigError(f"replay action {action.do!r} at {action.ts_ms}: missing or unknown {exc}") from None
    return engine, store
