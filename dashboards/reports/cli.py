"""``archmon report``: the compliance report for a period and rooms, as JSON or CSV (PDF: not yet)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from pathlib import Path

from alerts.store import AlertReader
from archmon.config import load_config
from archmon.errors import ConfigError

__all__ = ["add_commands"]


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``report`` on the main parser's subparsers.

    Args:
        subparsers: the main parser's subparsers.
        common: parent parser providing ``--config`` (added to every leaf command).
    """
    p = subparsers.add_parser("report", parents=[common],
                              help="compliance report for a period (JSON, or CSV: the per-day table)")
    p.add_argument("--from", dest="start", required=True, metavar="DATE", help="first day (YYYY-MM-DD, site zone)")
    p.add_argument("--to", dest="end", required=True, metavar="DATE", help="last day, included (YYYY-MM-DD)")
    p.add_argument("--rooms", metavar="ID,...", help="only these rooms (comma-separated; default: all)")
    p.add_argument("--lang", choices=("zh", "en"), help="language of names and labels (default: the site's)")
    p.add_argument("--format", choices=("json", "csv", "pdf"), required=True)
    p.add_argument("--out", required=True, metavar="FILE", help="where to write it ('-': standard output)")
    p.add_argument("--by", metavar="NAME", help="who generates it (default: the login name)")
    p.set_defaults(func=_report)


def _date(option: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be a date YYYY-MM-DD, got {text!r}") from None


def _report(args: argparse.Namespace) -> int:
    from archmon.cli import config_path
    from collector.store import SqliteStore
    from dashboards.reports.build import ReportRequest, build_report
    from dashboards.reports.csv_format import write_csv
    from dashboards.reports.json_format import write_json

    if args.format == "pdf":
        print("archmon report: the PDF report is not built yet; use --format json or --format csv", file=sys.stderr)
        return 2
    config = load_config(config_path(args))
    start, end = _date("--from", args.start), _date("--to", args.end)
    rooms = tuple(r.strip() for r in args.rooms.split(",") if r.strip()) if args.rooms else None
    path = config.resolve(config.storage.sqlite_path)
    if not path.exists():
        raise ConfigError(f"{path}: no database yet (has `archmon run` or `archmon demo` stored anything?)")
    request = ReportRequest(start, end, rooms, args.lang or config.site.language, args.by or _login())
    store = SqliteStore(path, tz=config.site.tz, readonly=True)
    alerts = AlertReader(path)
    try:
        report = build_report(config, store, request, alerts=alerts, db_path=path)
    finally:
        alerts.close()
        store.close()
    out = sys.stdout if args.out == "-" else open(Path(args.out), "w", encoding="utf-8", newline="")  # noqa: SIM115
    try:
        if args.format == "json":
            write_json(report, out)
        else:
            write_csv(report, out)
    finally:
        if out is not sys.stdout:
            out.close()
    where = "standard output" if args.out == "-" else args.out
    print(f"report {start}..{end} for {len(report.rooms)} room(s) written to {where}", file=sys.stderr)
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
