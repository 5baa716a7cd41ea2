"""``archmon forward refused`` and ``archmon forward requeue``: the points the remote refused for good.

A point InfluxDB refuses (its own error names a point problem) is moved from the outbox to
``forward_quarantine`` with the server's reason, and the ``forwarding`` alert is raised for an hour. When that
was a mistake (a server or proxy problem since fixed), ``requeue`` queues them again: the running service's
forwarder sends them (safe while ``archmon run`` runs: one more writer of the file, in short transactions).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

from archmon.config import Config, load_config
from archmon.sqlite import connect
from archmon.timeutil import local_text, parse_iso_ms

__all__ = ["add_commands"]


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``forward refused`` and ``forward requeue`` on the main parser."""
    forward = subparsers.add_parser("forward", help="forwarding to InfluxDB: points the server refused")
    sub = forward.add_subparsers(dest="forward_command", required=True)
    p = sub.add_parser("refused", parents=[common], help="list the points the server refused, newest first")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    p.set_defaults(func=_refused)
    p = sub.add_parser("requeue", parents=[common],
                       help="queue refused points again (e.g. after a proxy or server problem was fixed)")
    p.add_argument("--since", metavar="TIME",
                   help="only points refused at or after TIME (ISO 8601; the site's zone if it has no offset)")
    p.set_defaults(func=_requeue)


def _database(args: argparse.Namespace) -> tuple[Path, Config]:
    config = load_config(Path(getattr(args, "config", None) or os.environ.get("ARCHMON_CONFIG") or "archmon.toml"))
    return config.resolve(config.storage.sqlite_path), config


def _refused(args: argparse.Namespace) -> int:
    path, config = _database(args)
    tz = config.site.tz
    try:
        conn = connect(path, readonly=True)
    except (sqlite3.Error, FileNotFoundError) as exc:
        print(f"archmon forward refused: {path}: {exc}", file=sys.stderr)
        return 2
    try:
        total = conn.execute("SELECT count(*) FROM forward_quarantine").fetchone()[0]
        rows = conn.execute("SELECT at_ms, status, reason, line FROM forward_quarantine ORDER BY id DESC LIMIT ?",
                            (max(0, args.limit),)).fetchall()
    except sqlite3.OperationalError:  # no outbox in this file: forwarding never ran
        total, rows = 0, []
    finally:
        conn.close()
    print(f"{total} refused point(s) kept")
    for at_ms, status, reason, line in rows:
        print(f"{local_text(int(at_ms), tz)}  HTTP {status}: {reason}\n    {line}")
    return 0


def _requeue(args: argparse.Namespace) -> int:
    from collector.forward.outbox import Outbox
    from collector.forward.setup import outbox_limits

    path, config = _database(args)
    target = config.forward.influxdb
    if target is None:
        print("archmon forward requeue: [forward.influxdb] is not configured", file=sys.stderr)
        return 2
    since = None
    if args.since:
        try:
            since = parse_iso_ms(args.since, config.site.tz)
        except ValueError as exc:
            print(f"archmon forward requeue: --since {args.since!r}: {exc}", file=sys.stderr)
            return 2
    if not path.is_file():
        print(f"archmon forward requeue: {path} does not exist", file=sys.stderr)
        return 2
    outbox = Outbox(path, site=config.site.name, limits=outbox_limits(target), busy_timeout_s=10.0)
    try:
        queued = outbox.open().requeue(since_ms=since)
    finally:
        outbox.close()
    print(f"{queued} refused point(s) queued again for {target.url}")
    return 0
