"""``archmon status | export | backup | quarantine``: the commands that read what the service stored.

Registered on the main parser by :func:`add_commands` (``archmon/cli.py``), in the place they have always had
in ``archmon --help``. They load the config the way every command does, through the ``load`` the main parser
hands over (``--config``, ``$ARCHMON_CONFIG``, ``./archmon.toml``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from archmon.config import Config
from archmon.errors import ConfigError

if TYPE_CHECKING:
    from collector.store import SqliteStore

__all__ = ["ConfigLoader", "add_commands"]

ConfigLoader = Callable[[argparse.Namespace], Config]
"""Loads the config a command's arguments name (``archmon.cli``'s ``--config`` lookup)."""


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, *, load: ConfigLoader) -> None:
    """Register ``status``, ``export``, ``backup`` and ``quarantine`` on the main parser's subparsers.

    Args:
        sub: the main parser's subparsers.
        common: parent parser providing ``--config`` and ``--log-level`` (added to every command).
        load: loads the config the parsed arguments name.
    """
    p = sub.add_parser("status", parents=[common], help="last value, last seen and state of every sensor")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--all", action="store_true",
                   help="list every sensor (by default a site with more than 40 lists those that need attention)")
    p.add_argument("--room", metavar="ID", help="only this room's sensors")
    p.set_defaults(func=partial(_cmd_status, load=load))

    p = sub.add_parser("export", parents=[common], help="write stored readings as CSV or JSON lines")
    p.add_argument("--from", dest="start", required=True, metavar="ISO",
                   help="first time included (ISO-8601; without an offset, in the site's time zone)")
    p.add_argument("--to", dest="end", required=True, metavar="ISO", help="end, excluded (same form)")
    p.add_argument("--room", action="append", metavar="ID", help="only this room (repeatable)")
    p.add_argument("--sensor", action="append", metavar="ID", help="only this sensor (repeatable)")
    p.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=partial(_cmd_export, load=load))

    p = sub.add_parser("backup", parents=[common],
                       help="copy the database while archmon runs (SQLite online backup), then verify the copy")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="the copy (refused if it exists)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=partial(_cmd_backup, load=load))

    p = sub.add_parser("quarantine", parents=[common],
                       help="list rejected messages (payloads escaped) and unassigned devices")
    p.add_argument("--limit", type=int, default=20, help="newest rejected messages shown (default 20)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=partial(_cmd_quarantine, load=load))


def _cmd_status(args: argparse.Namespace, *, load: ConfigLoader) -> int:
    from dashboards.status import status_report

    config = load(args)
    report = status_report(config)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        from dashboards.status import format_status

        if args.room and args.room not in {r.id for r in config.rooms}:
            return _fail("status", f"unknown room {args.room!r}; known: {sorted(r.id for r in config.rooms)}")
        print(format_status(report, full=True if args.all else None, room=args.room))
    return 0


def _cmd_export(args: argparse.Namespace, *, load: ConfigLoader) -> int:
    from archmon.timeutil import parse_iso_ms
    from collector.export import export

    config = load(args)
    tz = config.site.tz
    try:
        start = parse_iso_ms(args.start, tz)
        end = parse_iso_ms(args.end, tz)
    except ValueError as exc:
        return _fail("export", f"--from/--to must be ISO-8601 dates or times: {exc}")
    if end <= start:
        return _fail("export", f"--to ({args.end}) must be after --from ({args.start})")
    sensors = set(args.sensor or [])
    for what, given, known in (("room", args.room, {r.id for r in config.rooms}),
                               ("sensor", args.sensor, {s.id for s in config.sensors})):
        unknown = set(given or []) - known
        if unknown:
            return _fail("export", f"unknown {what}(s) {sorted(unknown)}; known: {sorted(known)}")
    store = _open_store(config)
    try:
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
        try:
            rows = export(store, out, start_ms=start, end_ms=end, site=config.site.name,
                          rooms=set(args.room) if args.room else None, sensors=sensors or None, fmt=args.format)
        finally:
            if out is not sys.stdout:
                out.close()
    finally:
        store.close()
    print(f"{rows} reading(s) exported", file=sys.stderr)
    return 0


def _fail(command: str, message: str) -> int:
    print(f"archmon {command}: {message}", file=sys.stderr)
    return 2


def _open_store(config: Config) -> SqliteStore:
    from collector.store import SqliteStore

    path = config.resolve(config.storage.sqlite_path)
    if not path.exists():
        raise ConfigError(f"{path}: no database yet (has `archmon run` or `archmon demo` stored anything?)")
    return SqliteStore(path, tz=config.site.tz, readonly=True)


def _cmd_backup(args: argparse.Namespace, *, load: ConfigLoader) -> int:
    from archmon.backup import BackupError, backup_database

    config = load(args)
    source = config.resolve(config.storage.sqlite_path)
    try:
        result = backup_database(source, Path(args.out), overwrite=args.force)
    except BackupError as exc:
        print(f"archmon backup: {exc}", file=sys.stderr)
        return 1
    rows = result.rows
    main_tables = ", ".join(f"{name} {rows[name]}" for name in ("readings", "series", "alert_alerts", "audit_log")
                            if name in rows)
    print(f"backup of {result.source} written to {result.out}: {result.pages} pages ({result.bytes} bytes) in "
          f"{result.elapsed_s:.1f} s; integrity_check ok; {len(rows)} tables, {sum(rows.values())} rows, each "
          f"as in the snapshot copied ({main_tables})")
    for sidecar in result.sidecars:
        print(f"note: {sidecar} holds work a stop could not finish; copy it beside the backup too "
              "(docs/operations.md, Backup and restore)", file=sys.stderr)
    return 0


def _cmd_quarantine(args: argparse.Namespace, *, load: ConfigLoader) -> int:
    from dashboards.quarantine import quarantine_report

    config = load(args)
    print(quarantine_report(config, limit=args.limit, fmt=args.format))
    return 0
