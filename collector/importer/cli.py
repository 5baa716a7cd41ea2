"""``archmon import FILE... [--sensor ID] [--columns ...] [--tz ZONE]``: load logger CSV exports.

Every file is looked at first (format, sensor, dates): a problem with any of them refuses the whole run
before anything is stored (exit 2). Then each file is read through the trusted path of historical readings
with a progress bar on stderr, and one summary line per file on stdout: rows, readings offered, stored,
already stored, rejected (kept in the quarantine: ``archmon quarantine`` lists them, each naming its file
and line). Exit 0: every reading stored or already stored; 1: some rejected, or the database stopped the
import (what was stored stays; the same command again adds the rest); 2: bad input or configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from archmon.config import Config, load_config
from archmon.timeutil import local_text
from collector.calibration import CorrectionSource
from collector.importer.columns import parse_columns
from collector.importer.progress import ImportProgress
from collector.importer.run import ImportOptions, ImportOutcome, ImportPlan, plan_import, run_import
from collector.importer.table import ImportRefused
from collector.writer import BatchStore

__all__ = ["add_commands"]

DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", ",": ",", ";": ";"}
"""``--delimiter`` values (names, as a shell passes ``;`` and tab badly) and the delimiter each means."""

CorrectionsFactory = Callable[[Path], CorrectionSource]
"""Opens the recorded calibrations of a database (``alerts.calibration.RecordedCorrections``)."""


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser, *,
                 corrections: CorrectionsFactory | None = None) -> None:
    """Register ``import`` on the main parser.

    Args:
        subparsers: the main parser's subparsers.
        common: parent parser providing ``--config`` and ``--log-level``.
        corrections: opens the recorded calibrations of the database (given by ``archmon.cli``: the collector
            does not import the alert package); None: only the configured ``[sensors.calibration]``.
    """
    p = subparsers.add_parser(
        "import", parents=[common],
        help="load logger CSV exports (UCI, HOBO, Testo-style, archmon export) as history (see docs/import.md)",
        description="Load logger CSV exports through validation, calibration, quarantine and the idempotent "
                    "store: importing a file twice adds nothing. Formats recognised by their header: the UCI "
                    "occupancy data set, HOBOware, Testo-style exports and archmon's own export; any other "
                    "with --columns.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="CSV file(s) to import")
    p.add_argument("--sensor", metavar="ID",
                   help="the configured sensor the readings are for (archmon's export: only this sensor's rows)")
    p.add_argument("--columns", metavar="SPEC",
                   help="ts=COL[,temperature=COL][,humidity=COL]... (or date=COL,time=COL): header names or "
                        "column numbers (1 first); temperature_unit=F for °F")
    p.add_argument("--tz", metavar="ZONE",
                   help="zone of times without an offset (default: the site's); a zone in the header or an "
                        "offset in the data wins")
    p.add_argument("--date-order", choices=("mdy", "dmy", "ymd"),
                   help="order of dates written with slashes, when the file's dates do not tell")
    p.add_argument("--encoding", metavar="NAME", help="the file's text encoding (default: detected)")
    p.add_argument("--delimiter", choices=sorted(DELIMITER_NAMES), metavar="comma|semicolon|tab",
                   help="the cell delimiter (default: the one that splits the header and its rows alike)")
    p.set_defaults(func=partial(_import, corrections=corrections))


def _config_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "config", None) or os.environ.get("ARCHMON_CONFIG") or "archmon.toml")


def _fail(lines: list[str]) -> int:
    print(f"archmon import: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}" if line else "", file=sys.stderr)
    return 2


def _import(args: argparse.Namespace, *, corrections: CorrectionsFactory | None) -> int:
    config = load_config(_config_path(args))
    try:
        tz = ZoneInfo(args.tz) if args.tz else None
    except (ZoneInfoNotFoundError, ValueError):
        return _fail([f"--tz {args.tz!r} is not a time zone (e.g. Asia/Shanghai, Europe/Brussels)"])
    try:
        options = ImportOptions(sensor=args.sensor, columns=parse_columns(args.columns) if args.columns else None,
                                tz=tz, date_order=args.date_order, encoding=args.encoding,
                                delimiter=DELIMITER_NAMES[args.delimiter] if args.delimiter else None)
        plans = [plan_import(config, path, options) for path in args.files]
    except ImportRefused as exc:
        return _fail(exc.lines)
    path = config.resolve(config.storage.sqlite_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from collector.store import SqliteStore

    store = SqliteStore(path, tz=config.site.tz)
    outbox = None
    recorded = corrections(path) if corrections is not None else None
    try:
        if config.forward.active is not None:
            from collector.forward.hook import attach_outbox

            # imported history is forwarded like live readings: queued in the same transactions
            outbox = attach_outbox(config, store)
            print(f"readings stored are queued for forwarding to {config.forward.active.url} "
                  "(archmon run sends them)", file=sys.stderr)
        outcomes = [_one(config, store, plan, recorded) for plan in plans]
    finally:
        close = getattr(recorded, "close", None)
        if close is not None:
            close()
        if outbox is not None:
            outbox.close()
        store.close()
    if len(outcomes) > 1:
        print(_total(outcomes))
    if any(o.result.rejected for o in outcomes):
        print("rejected rows are kept in the quarantine with their file and line: archmon quarantine lists them",
              file=sys.stderr)
    return 0 if all(o.complete for o in outcomes) else 1


def _one(config: Config, store: BatchStore, plan: ImportPlan, recorded: CorrectionSource | None) -> ImportOutcome:
    print(plan.describe(), file=sys.stderr)
    progress = ImportProgress(plan.file.name, plan.scan.rows, sys.stderr)
    outcome = run_import(config, store, plan, corrections=recorded, progress=progress)
    progress.close(outcome.counts)
    print(_summary(plan.file.name, outcome, config))
    for reason in outcome.result.reasons:
        print(f"  rejected: {reason}", file=sys.stderr)
    if outcome.error:
        print(f"archmon import: {plan.file.name}: {outcome.error}; run the same import again to add the rest",
              file=sys.stderr)
    return outcome


def _summary(name: str, outcome: ImportOutcome, config: Config) -> str:
    """``FILE: N rows, N offered, N stored, N already stored, N rejected[, ...]``."""
    r, c = outcome.result, outcome.counts
    parts = [f"{c.rows:,} rows", f"{r.offered:,} offered", f"{r.stored:,} stored", f"{r.duplicates:,} already stored",
             f"{r.rejected:,} rejected"]
    if r.rejected:
        kept = "all" if r.suppressed == 0 else f"{r.quarantined:,}"
        parts[-1] += f" ({kept} kept in the quarantine: archmon quarantine)"
    if c.empty:
        parts.append(f"{c.empty:,} empty cells (no reading)")
    if c.other_sensors:
        parts.append(f"{c.other_sensors:,} rows of other sensors left out")
    if r.first_ms is not None and r.last_ms is not None:
        tz = config.site.tz
        parts.append(f"stored from {local_text(r.first_ms, tz)} to {local_text(r.last_ms, tz)}")
    if outcome.error:
        parts.append("STOPPED EARLY")
    return f"{name}: " + ", ".join(parts)


def _total(outcomes: list[ImportOutcome]) -> str:
    total = {key: sum(getattr(o.result, key) for o in outcomes) for key in ("offered", "stored", "duplicates")}
    rejected = sum(o.result.rejected for o in outcomes)
    return (f"{len(outcomes)} files: {total['offered']:,} offered, {total['stored']:,} stored, "
            f"{total['duplicates']:,} already stored, {rejected:,} rejected")
