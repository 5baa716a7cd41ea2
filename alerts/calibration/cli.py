"""``archmon calibration add | list | status | raw``: record calibrations, show the history and the due dates,
and give stored readings back uncorrected. Times are shown in the site's zone with their offset."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from typing import Any, TextIO

from alerts._cli_common import fail, language_of, load, local_time, reader_for, table, with_store, with_times
from alerts.calibration.due import calibration_rows, local_day
from alerts.calibration.records import CalibrationError, record_calibration
from alerts.store._calibration import CalibrationRecord
from archmon.config import Config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms, parse_iso_ms, to_iso
from collector.calibration import OffsetBook, correction_for

__all__ = ["add_commands"]

_LIST_HEADINGS = {"zh": ("编号", "仪器", "校准日期", "证书编号", "温度修正", "湿度修正", "记录人", "记录时间",
                         "生效时间"),
                  "en": ("id", "sensor", "calibrated", "certificate", "T offset", "RH offset", "by", "recorded",
                         "applies from")}
_STATUS_HEADINGS = {"zh": ("仪器", "库房", "上次校准", "证书编号", "到期日", "状态"),
                    "en": ("sensor", "room", "last calibrated", "certificate", "due", "status")}
_STATUS_NAMES = {"ok": ("有效", "ok"), "due_soon": ("即将到期", "due soon"), "overdue": ("已过期", "OVERDUE"),
                 "never": ("无校准记录", "never calibrated")}


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``calibration`` and its sub-commands on the main parser.

    Args:
        subparsers: the main parser's subparsers.
        common: parent parser providing ``--config PATH`` (added to every leaf command).
    """
    group = subparsers.add_parser("calibration", help="calibration records of the instruments (校准记录)")
    sub = group.add_subparsers(dest="calibration_command", required=True)
    p = sub.add_parser("add", parents=[common], help="record a calibration (audited); its offsets correct readings "
                                                     "from its date on (see docs/calibration.md)")
    p.add_argument("sensor", metavar="SENSOR", help="sensor id (as configured)")
    p.add_argument("--date", required=True, help="calibration date YYYY-MM-DD (the site's calendar)")
    p.add_argument("--certificate", required=True, metavar="NO", help="certificate number (证书编号)")
    p.add_argument("--offset-temperature", type=float, metavar="X", help="℃ to add to temperature readings")
    p.add_argument("--offset-humidity", type=float, metavar="Y", help="%%RH to add to humidity readings")
    p.add_argument("--by", metavar="NAME", help="who records it (default: $USER)")
    p.set_defaults(func=_add)
    p = sub.add_parser("list", parents=[common], help="the calibration history, oldest first")
    p.add_argument("sensor", metavar="SENSOR", nargs="?", help="only this sensor")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--lang", choices=("zh", "en"), help="language of the headings (default: the site's)")
    p.set_defaults(func=_list)
    p = sub.add_parser("status", parents=[common], help="each instrument's last calibration and due date")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--lang", choices=("zh", "en"), help="language of the headings (default: the site's)")
    p.set_defaults(func=_status)
    p = sub.add_parser("raw", parents=[common], help="stored readings of a sensor with the correction each got and "
                                                     "its uncorrected (raw) value")
    p.add_argument("sensor", metavar="SENSOR")
    p.add_argument("--from", dest="start", required=True, metavar="ISO", help="first time (site zone if no offset)")
    p.add_argument("--to", dest="end", required=True, metavar="ISO", help="end, excluded")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_raw)


def _add(args: argparse.Namespace) -> int:
    try:
        calibrated_on = dt.date.fromisoformat(args.date.strip())
    except ValueError:
        return fail(f"calibration add: --date must be a date YYYY-MM-DD, got {args.date!r}")
    try:
        config, store = with_store(args)
    except ConfigError as exc:
        return fail(str(exc))
    now = now_ms()
    try:
        record = record_calibration(store, config, args.sensor, calibrated_on, args.certificate,
                                    offset_temperature=args.offset_temperature, offset_humidity=args.offset_humidity,
                                    by=args.by or os.environ.get("USER") or "cli", now_ms=now)
    except CalibrationError as exc:
        return fail(f"calibration add: {exc}", 1)
    finally:
        store.close()
    tz = config.site.tz
    print(f"calibration {record.id}: sensor {record.sensor} calibrated on {record.calibrated_on.isoformat()}, "
          f"certificate {record.certificate}; temperature {record.offset_temperature:+g} ℃, "
          f"humidity {record.offset_humidity:+g} %RH, from {local_time(record.applies_from_ms, tz)}")
    start = dt.datetime.combine(record.calibrated_on, dt.time(), tzinfo=tz)
    if record.applies_from_ms > start.timestamp() * 1000:
        print(f"readings stored before {local_time(record.applies_from_ms, tz)} keep the correction they were "
              "stored with (a record never rewrites stored readings; `archmon calibration raw` gives raw values)")
    return 0


def _history(config: Config, sensor: str | None) -> list[CalibrationRecord]:
    reader = reader_for(config)
    if reader is None:
        return []
    try:
        return reader.calibration_records(sensor)
    finally:
        reader.close()


def _list(args: argparse.Namespace) -> int:
    try:
        config = load(args)
    except ConfigError as exc:
        return fail(str(exc))
    if args.sensor is not None and args.sensor not in {s.id for s in config.sensors}:
        return fail(f"calibration list: unknown sensor {args.sensor!r} (known: "
                    f"{', '.join(s.id for s in config.sensors) or 'none configured'})", 1)
    tz = config.site.tz
    records = _history(config, args.sensor)
    if args.format == "json":
        print(json.dumps([with_times(r.to_dict(), tz) for r in records], ensure_ascii=False, indent=2))
        return 0
    language = args.lang or language_of(config)
    if not records:
        print("没有校准记录" if language == "zh" else "no calibration records")
        return 0
    rows: list[tuple[str, ...]] = [_LIST_HEADINGS[language]]
    rows += [(str(r.id), r.sensor, r.calibrated_on.isoformat(), r.certificate, f"{r.offset_temperature:+g}",
              f"{r.offset_humidity:+g}", r.by, local_time(r.recorded_ms, tz), local_time(r.applies_from_ms, tz))
             for r in records]
    print("\n".join(table(rows)))
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        config = load(args)
    except ConfigError as exc:
        return fail(str(exc))
    now = now_ms()
    reader = reader_for(config)
    try:
        latest = {} if reader is None else reader.latest_calibrations(until=local_day(now, config.site.tz))
    finally:
        if reader is not None:
            reader.close()
    rows = calibration_rows(config, latest, now)
    if args.format == "json":
        print(json.dumps([row.to_dict() for row in rows], ensure_ascii=False, indent=2))
        return 0
    language = args.lang or language_of(config)
    pick = 0 if language == "zh" else 1
    lines: list[tuple[str, ...]] = [_STATUS_HEADINGS[language]]
    lines += [(row.instrument, row.room, row.last_calibrated_on.isoformat() if row.last_calibrated_on else "—",
               row.certificate or "—", row.due_on.isoformat() if row.due_on else "—",
               _STATUS_NAMES.get(row.status, (row.status, row.status))[pick]) for row in rows]
    print("\n".join(table(lines)))
    return 0


def _raw(args: argparse.Namespace) -> int:
    try:
        config = load(args)
    except ConfigError as exc:
        return fail(str(exc))
    sensor = next((s for s in config.sensors if s.id == args.sensor), None)
    if sensor is None:
        return fail(f"calibration raw: unknown sensor {args.sensor!r}", 1)
    tz = config.site.tz
    try:
        start, end = parse_iso_ms(args.start, tz), parse_iso_ms(args.end, tz)
    except ValueError as exc:
        return fail(f"calibration raw: --from/--to must be ISO-8601 dates or times: {exc}")
    path = config.resolve(config.storage.sqlite_path)
    if not path.is_file():
        return fail(f"{path}: no database yet")
    from collector.store import SqliteStore

    book = OffsetBook(r.as_offset() for r in _history(config, sensor.id))
    store = SqliteStore(path, tz=tz, readonly=True)
    out: TextIO = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
    count = 0
    try:
        writer = csv.writer(out, lineterminator="\n") if args.format == "csv" else None
        columns = ("ts", "sensor", "quantity", "stored", "correction", "record", "certificate", "scale", "offset",
                   "raw", "exact")
        if writer is not None:
            writer.writerow(columns)
        for ts, _room, _sensor, quantity, value in store.readings(start, end, {sensor.id}):
            correction = correction_for(sensor, quantity, ts, book)
            raw, exact = correction.invert(quantity, value)
            row: dict[str, Any] = {"ts": to_iso(ts, tz), "sensor": sensor.id, "quantity": quantity, "stored": value,
                                   "correction": correction.source, "record": correction.record_id,
                                   "certificate": correction.certificate, "scale": correction.scale,
                                   "offset": correction.offset, "raw": round(raw, 6), "exact": exact}
            if writer is not None:
                writer.writerow(["" if row[c] is None else row[c] for c in columns])
            else:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    finally:
        store.close()
        if out is not sys.stdout:
            out.close()
    print(f"{count} reading(s); configured corrections as in {config.label} now (the config's history is not "
          "kept: a changed [sensors.calibration] changes what is shown for earlier readings)", file=sys.stderr)
    return 0
