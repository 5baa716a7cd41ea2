"""``archmon report`` (the compliance report as PDF, JSON or CSV), ``archmon report verify FILE`` (did this archmon
produce exactly this file?) and ``archmon register`` (the monthly 温湿度登记表). Every file made is recorded
in the audit log with its SHA-256 before anyone can open it (:mod:`dashboards.reports.integrity`): the bytes
go to a temporary file beside ``--out`` first (a destination that cannot be written stops the command with
exit 2 before anything is made or recorded), the hash is recorded, then the file is renamed into place."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from archmon.config import load_config
from archmon.errors import ConfigError

__all__ = ["add_commands"]


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``report`` (with its ``verify`` action) and ``register`` on the main parser's subparsers.

    Args:
        subparsers: the main parser's subparsers.
        common: parent parser providing ``--config`` (added to every leaf command).
    """
    p = subparsers.add_parser(
        "report", parents=[common], help="compliance report for a period (PDF, JSON, or CSV: the per-day table); "
                                         "'report verify FILE' checks a file archmon made",
        description="archmon report --from DATE --to DATE --format pdf|json|csv --out FILE, or "
                    "archmon report verify FILE")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day (YYYY-MM-DD, site zone)")
    p.add_argument("--to", dest="end", metavar="DATE", help="last day, included (YYYY-MM-DD)")
    p.add_argument("--rooms", metavar="ID,...", help="only these rooms (comma-separated; default: all)")
    p.add_argument("--lang", choices=("zh", "en"), help="language of names and labels (default: the site's)")
    p.add_argument("--format", choices=("json", "csv", "pdf"))
    p.add_argument("--out", metavar="FILE", help="where to write it ('-': standard output)")
    p.add_argument("--by", metavar="NAME", help="who generates it (default: the login name)")
    p.set_defaults(func=_report)
    actions = p.add_subparsers(dest="report_action", metavar="ACTION")
    v = actions.add_parser("verify", parents=[common],
                           help="whether this archmon produced exactly this file, when and for what period")
    v.add_argument("file", metavar="FILE", help="a report or register archmon made")
    v.set_defaults(func=_verify)

    r = subparsers.add_parser("register", parents=[common],
                              help="the monthly 温湿度登记表 (PDF, one A4 sheet per room) from the duty readings")
    r.add_argument("--month", required=True, metavar="YYYY-MM", help="the month (site zone)")
    r.add_argument("--rooms", metavar="ID,...", help="only these rooms (default: all but [reports] outdoor_room)")
    r.add_argument("--lang", choices=("zh", "en"), help="language (default: the site's)")
    r.add_argument("--out", required=True, metavar="FILE.pdf", help="where to write it ('-': standard output)")
    r.add_argument("--by", metavar="NAME", help="who generates it (default: the login name)")
    r.set_defaults(func=_register)


def _date(option: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be a date YYYY-MM-DD, got {text!r}") from None


def _rooms(text: str | None) -> tuple[str, ...] | None:
    return tuple(r.strip() for r in text.split(",") if r.strip()) if text else None


class _Destination:
    """Where ``--out`` goes: standard output, or a temporary file beside it renamed into place at the end."""

    def __init__(self, out: str) -> None:
        self.out = out
        self._temp: Path | None = None
        if out == "-":
            return
        target = Path(out)
        if target.is_dir():
            raise ConfigError(f"--out {out}: is a folder; name the file to write")
        try:
            handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc}); nothing was made or "
                              "recorded") from None
        os.close(handle)
        self._temp = Path(name)

    def stage(self, data: bytes) -> None:
        """Write the bytes to the temporary file (before the hash is recorded)."""
        if self._temp is None:
            return
        try:
            self._temp.write_bytes(data)
        except OSError as exc:
            self.discard()
            raise ConfigError(f"--out {self.out}: cannot write it ({exc.strerror or exc}); nothing was "
                              "recorded") from None

    def commit(self, data: bytes) -> str:
        """Put the file in place (or write standard output); returns where it went."""
        if self._temp is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return "standard output"
        try:
            os.replace(self._temp, self.out)
        except OSError as exc:
            self.discard()
            raise ConfigError(f"--out {self.out}: cannot put the file in place ({exc.strerror or exc}); the "
                              "audit log has its hash, make it again") from None
        return self.out

    def discard(self) -> None:
        """Remove the temporary file (a failure before the end)."""
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None


def _report(args: argparse.Namespace) -> int:
    from archmon.cli import config_path
    from dashboards.reports.produce import produce_report

    missing = [name for name, value in (("--from", args.start), ("--to", args.end), ("--format", args.format),
                                        ("--out", args.out)) if not value]
    if missing:
        raise ConfigError(f"archmon report: {', '.join(missing)} required (archmon report --from DATE --to DATE "
                          "--format pdf|json|csv --out FILE), or archmon report verify FILE")
    config = load_config(config_path(args))
    start, end = _date("--from", args.start), _date("--to", args.end)
    out = _Destination(args.out)
    try:
        made = produce_report(config, from_date=start, to_date=end, fmt=args.format, rooms=_rooms(args.rooms),
                              lang=args.lang, by=args.by or _login(),
                              name=Path(args.out).name if args.out != "-" else "-", stage=out.stage)
    except BaseException:
        out.discard()
        raise
    where = out.commit(made.data)
    pages = f", {made.pages} pages" if made.pages else ""
    print(f"report {start}..{end} for {len(made.rooms)} room(s) written to {where}{pages}; SHA-256 "
          f"{made.record.sha256} recorded in the audit log (entry #{made.record.seq})", file=sys.stderr)
    return 0


def _register(args: argparse.Namespace) -> int:
    from archmon.cli import config_path
    from dashboards.reports.produce import produce_register

    config = load_config(config_path(args))
    out = _Destination(args.out)
    try:
        made = produce_register(config, month=args.month, rooms=_rooms(args.rooms), lang=args.lang,
                                by=args.by or _login(), name=Path(args.out).name if args.out != "-" else "-",
                                stage=out.stage)
    except BaseException:
        out.discard()
        raise
    where = out.commit(made.data)
    print(f"register {args.month} for {len(made.rooms)} room(s) written to {where}, {made.pages} pages; SHA-256 "
          f"{made.record.sha256} recorded in the audit log (entry #{made.record.seq})", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from archmon.cli import config_path
    from dashboards.reports.integrity import verify_file

    config = load_config(config_path(args))
    db = config.resolve(config.storage.sqlite_path)
    if not db.exists():
        raise ConfigError(f"{db}: no database: nothing can be verified against it")
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{args.file}: cannot read it: {exc.strerror}") from None
    result = verify_file(db, data)
    tz = ZoneInfo(config.site.timezone)
    if not result.records:
        print(f"NOT VERIFIED: {args.file} (SHA-256 {result.sha256}) was not produced by this archmon ({db}), or "
              "was changed since: no audit entry has this hash")
        return 1
    for record in result.records:
        when = dt.datetime.fromtimestamp(record.ts_ms / 1000, tz).isoformat(timespec="seconds")
        print(f"{'VERIFIED' if result.chain.ok else 'FOUND'}: {args.file} is exactly the {record.document} "
              f"({record.format}, {record.lang}) for {record.from_date}..{record.to_date}, rooms "
              f"{', '.join(record.rooms) or '-'}, produced by this archmon at {when} by {record.by} "
              f"(audit entry #{record.seq}, SHA-256 {record.sha256})")
    if not result.chain.ok:
        print(f"WARNING: the audit log's hash chain is {result.chain}: its records cannot be trusted")
        return 1
    print(f"audit log: {result.chain}")
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
