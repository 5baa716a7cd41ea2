"""``archmon standards | alerts | audit | replay``: registered on the main parser by ``add_commands``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.actions import acknowledge, clear_by_hand
from alerts.messages import SEVERITY_NAMES, STATE_NAMES
from alerts.profiles import StandardProfile, list_profiles, load_profile
from alerts.replay import profile_config, read_readings_csv, run_replay
from alerts.store import AlertReader, AlertStore
from archmon.config import Config, load_config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms, parse_iso_ms

__all__ = ["MAX_WINDOW_DAYS", "add_commands", "config_path"]

MAX_WINDOW_DAYS = 30  # a longer maintenance window needs --force (a typo in --until must not silence a room)
DAY_MS = 86_400_000


def config_path(args: argparse.Namespace) -> Path:
    """``--config``, else ``$ARCHMON_CONFIG``, else ``./archmon.toml``."""
    given = getattr(args, "config", None)
    return Path(given or os.environ.get("ARCHMON_CONFIG") or "archmon.toml")


def _load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def _store(config: Config) -> AlertStore:
    return AlertStore(config.resolve(config.storage.sqlite_path))


def _reader(config: Config) -> AlertReader | None:
    """Read-only access (never waits on the running engine); None if the database does not exist yet."""
    path = config.resolve(config.storage.sqlite_path)
    return AlertReader(path) if path.is_file() else None


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``standards``, ``alerts``, ``audit`` and ``replay`` on the main parser's subparsers.

    Args:
        subparsers: the main parser's subparsers.
        common: parent parser providing ``--config PATH`` (added to every leaf command).
    """
    standards = subparsers.add_parser("standards", help="archive-room standard profiles")
    sub = standards.add_subparsers(dest="standards_command", required=True)
    p = sub.add_parser("list", parents=[common], help="list the shipped profiles")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_standards_list)
    p = sub.add_parser("show", parents=[common], help="show one profile")
    p.add_argument("id")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_standards_show)

    alerts = subparsers.add_parser("alerts", help="list, acknowledge and clear alerts; maintenance windows")
    sub = alerts.add_subparsers(dest="alerts_command", required=True)
    p = sub.add_parser("list", parents=[common], help="list alerts, newest first")
    p.add_argument("--active", action="store_true", help="only pending, active and acknowledged alerts")
    p.add_argument("--all", action="store_true",
                   help="also alerts cancelled before they fired (by default only alerts that fired or are pending)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--lang", choices=("zh", "en"), help="language of the states and headings (default: the "
                                                         "alert language, else the site's)")
    p.set_defaults(func=_alerts_list)
    for name, func, help_text in (("ack", _alerts_ack, "acknowledge an alert"),
                                  ("clear", _alerts_clear, "clear an alert by hand")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("id", type=int)
        p.add_argument("--by", required=True, help="who (name)")
        p.add_argument("--comment", required=True)
        p.set_defaults(func=func)
    p = sub.add_parser(
        "maintenance", parents=[common], help="silence a room's non-critical rules until a time; list or end windows",
        usage="%(prog)s ROOM --until ISO --reason TEXT [--start ISO] [--by NAME] [--force]\n"
              "       %(prog)s --list [--room ROOM]\n"
              "       %(prog)s --end ID --by NAME [--comment TEXT]")
    p.add_argument("room", nargs="?", help="room id (to open a window)")
    p.add_argument("--until", help="ISO-8601 end (site zone if no offset)")
    p.add_argument("--reason", help="why the room is silenced (required, not empty)")
    p.add_argument("--by", help="who (default: $USER when opening; required to end a window)")
    p.add_argument("--start", help="ISO-8601 start (default now)")
    p.add_argument("--force", action="store_true",
                   help=f"allow a window longer than {MAX_WINDOW_DAYS} days")
    p.add_argument("--list", action="store_true", help="list active and future windows")
    p.add_argument("--room", dest="list_room", metavar="ROOM", help="with --list: only this room")
    p.add_argument("--format", choices=("text", "json"), default="text", help="with --list: output format")
    p.add_argument("--lang", choices=("zh", "en"), help="with --list: language of the headings")
    p.add_argument("--end", type=int, metavar="ID", help="end window ID now")
    p.add_argument("--comment", default="", help="with --end: why it ends early")
    p.set_defaults(func=_alerts_maintenance)

    audit = subparsers.add_parser("audit", help="the audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    p = sub.add_parser("verify", parents=[common], help="verify the audit log's hash chain")
    p.set_defaults(func=_audit_verify)

    p = subparsers.add_parser("replay", parents=[common], help="judge a CSV of readings in simulated time")
    p.add_argument("--readings", required=True, type=Path, help="CSV with ts,sensor,quantity,value")
    p.add_argument("--profile", help="one room with this profile holding every sensor of the CSV")
    p.add_argument("--tz", help="zone of timestamps without offset (default: the site's)")
    p.add_argument("--db", help="keep the replay's alerts in this SQLite file (default: in memory)")
    p.add_argument("--until", help="run timers on to this ISO-8601 time after the last row")
    p.set_defaults(func=_replay)


def _fail(message: str, code: int = 2) -> int:
    print(f"archmon: {message}", file=sys.stderr)
    return code


def _profile_summary(profile: StandardProfile) -> dict[str, Any]:
    return profile.model_dump(mode="json")


def _band_text(low: float | None, high: float | None, unit: str) -> str:
    if low is None and high is None:
        return "-"
    return f"{'' if low is None else f'{low:g}'}–{'' if high is None else f'{high:g}'} {unit}"


def _standards_list(args: argparse.Namespace) -> int:
    profiles = list_profiles()
    if args.format == "json":
        print(json.dumps([_profile_summary(p) for p in profiles], ensure_ascii=False, indent=2))
        return 0
    for p in profiles:
        print(f"{p.id:12} {_band_text(p.temperature.low, p.temperature.high, '°C'):14} "
              f"{_band_text(p.humidity.low, p.humidity.high, '%RH'):14} {p.name_zh} / {p.name_en}")
    return 0


def _standards_show(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.id)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.format == "json":
        print(json.dumps(_profile_summary(profile), ensure_ascii=False, indent=2))
        return 0
    s = profile.stability
    print(f"{profile.name_zh} / {profile.name_en} ({profile.id})")
    print(f"  source:      {profile.source}")
    print(f"  temperature: {_band_text(profile.temperature.low, profile.temperature.high, '°C')}"
          f" (clear margin {profile.temperature.clear_margin:g})")
    print(f"  humidity:    {_band_text(profile.humidity.low, profile.humidity.high, '%RH')}"
          f" (clear margin {profile.humidity.clear_margin:g})")
    print(f"  24 h stability: ΔT ≤ {s.temperature_max}, ΔRH ≤ {s.humidity_max}, interpretation {s.interpretation}")
    print(f"  delays: {profile.timing.delay_s:g} s to fire, {profile.timing.clear_delay_s:g} s to clear")
    print(f"  mould risk: RH ≥ {profile.mould.rh:g} % for {profile.mould.delay_s:g} s")
    return 0


def _with_store(args: argparse.Namespace) -> tuple[Config, AlertStore]:
    config = _load(args)
    return config, _store(config)


_LIST_HEADINGS = {"zh": ("编号", "更新时间", "级别", "状态", "标题"),
                  "en": ("id", "updated", "severity", "state", "title")}
_WINDOW_HEADINGS = {"zh": ("编号", "库房", "开始", "结束", "操作人", "原因"),
                    "en": ("id", "room", "start", "end", "by", "reason")}


def _with_times(row: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A row for JSON: every ``*_ms`` time also as ``*_at``, ISO-8601 in the site's zone with its offset."""
    out = dict(row)
    for key, value in row.items():
        if key.endswith("_ms") and isinstance(value, int) and not isinstance(value, bool):
            out[key[:-3] + "_at"] = _local(value, tz)
    return out


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows padded to column widths (Chinese characters take two columns); the last column is not padded."""
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(_pad(cell, width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
            for row in rows]


def _alerts_list(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except ConfigError as exc:
        return _fail(str(exc))
    reader = _reader(config)
    tz = config.site.tz
    try:
        rows = [] if reader is None else reader.alerts(active_only=args.active, fired_only=not args.all)
        if args.format == "json":
            for row in rows:
                assert reader is not None
                row["comments"] = [_with_times(c, tz) for c in reader.comments(row["id"])]
            print(json.dumps([_with_times(row, tz) for row in rows], ensure_ascii=False, indent=2))
            return 0
        language = args.lang or _language(config)
        which = 0 if language == "zh" else 1
        table: list[tuple[str, ...]] = [_LIST_HEADINGS[language]]
        for row in rows:
            state = STATE_NAMES.get(row["state"], (row["state"], row["state"]))[which]
            severity = SEVERITY_NAMES.get(row["severity"], (row["severity"], row["severity"]))[which]
            text = row["title_zh"] if which == 0 else row["title_en"]
            table.append((str(row["id"]), _local(row["updated_ms"], tz), severity, state, text))
        print("\n".join(_table(table)))
        if not rows:
            print("没有告警" if language == "zh" else "no alerts")
        return 0
    finally:
        if reader is not None:
            reader.close()


def _language(config: Config) -> str:
    """The language of alert texts: ``[alerts] language``, else the site's (as the engine's titles)."""
    language = config.alerts.get("language") if isinstance(config.alerts, dict) else None
    return language if language in ("zh", "en") else config.site.language


def _alerts_ack(args: argparse.Namespace) -> int:
    return _alert_action(args, acknowledge)


def _alerts_clear(args: argparse.Namespace) -> int:
    return _alert_action(args, clear_by_hand)


def _alert_action(args: argparse.Namespace, action: Any) -> int:
    try:
        _, store = _with_store(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        transitions = action(store, args.id, args.by, args.comment, now_ms())
    except KeyError:
        return _fail(f"no alert with id {args.id}", 1)
    except ValueError as exc:
        return _fail(str(exc), 1)
    finally:
        store.close()
    for transition in transitions:
        print(f"alert {transition.alert}: {transition.state}")
    if not transitions:
        print(f"alert {args.id}: comment added")
    return 0


def _iso_option(option: str, text: str, tz: ZoneInfo) -> int:
    """Parse the ISO-8601 value of ``option`` (site zone if no offset).

    Raises:
        ValueError: one line naming the option and the text given.
    """
    try:
        return parse_iso_ms(text, tz)
    except ValueError:
        raise ValueError(f"{option}: not an ISO-8601 time: {text!r} (e.g. 2024-03-04T17:30)") from None


def _local(ts_ms: int, tz: ZoneInfo) -> str:
    """A time for people: ISO-8601 in the site's zone, to the second (``2024-03-04T17:30:00+08:00``)."""
    return datetime.fromtimestamp(ts_ms / 1000, tz).isoformat(timespec="seconds")


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal (Chinese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _unknown_room(room: str, config: Config) -> str:
    known = ", ".join(sorted(r.id for r in config.rooms)) or "none configured"
    return f"unknown room {room!r} (known rooms: {known})"


def _alerts_maintenance(args: argparse.Namespace) -> int:
    modes = [name for name, given in (("ROOM", args.room is not None), ("--list", args.list),
                                      ("--end", args.end is not None)) if given]
    if len(modes) != 1:
        what = " and ".join(modes) if modes else "nothing"
        return _fail(f"alerts maintenance: give one of ROOM (open a window), --list or --end ID, not {what}")
    stray = {"--list": ("--until", "--reason", "--start", "--force", "--comment", "--by"),
             "--end": ("--until", "--reason", "--start", "--force", "--room", "--lang"),
             "ROOM": ("--room", "--comment", "--lang")}[modes[0]]
    for option in stray:
        if getattr(args, {"--room": "list_room"}.get(option, option[2:])) not in (None, False, ""):
            return _fail(f"alerts maintenance: {option} does not go with {modes[0]}")
    if args.format != "text" and not args.list:
        return _fail(f"alerts maintenance: --format does not go with {modes[0]}")
    if args.list:
        try:
            return _maintenance_list(args, _load(args))
        except ConfigError as exc:
            return _fail(str(exc))
    try:
        config, store = _with_store(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        if args.end is not None:
            return _maintenance_end(args, config, store)
        return _maintenance_open(args, config, store)
    except ValueError as exc:
        return _fail(str(exc), 1)
    finally:
        store.close()


def _maintenance_open(args: argparse.Namespace, config: Config, store: AlertStore) -> int:
    if args.room not in {room.id for room in config.rooms}:
        return _fail(_unknown_room(args.room, config), 1)
    if args.until is None:
        return _fail("alerts maintenance: --until is required to open a window")
    reason = (args.reason or "").strip()
    if not reason:
        return _fail("alerts maintenance: --reason is required and must not be empty", 1)
    by = (args.by or os.environ.get("USER") or "cli").strip()
    tz = config.site.tz
    now = now_ms()
    start = _iso_option("--start", args.start, tz) if args.start else now
    until = _iso_option("--until", args.until, tz)
    if until <= start:
        what = f"the start {_local(start, tz)}" if args.start else f"now ({_local(now, tz)})"
        return _fail(f"--until {_local(until, tz)} is not after {what}", 1)
    if until <= now:
        return _fail(f"--until {_local(until, tz)} is in the past", 1)
    if until - start > MAX_WINDOW_DAYS * DAY_MS and not args.force:
        days = (until - start) / DAY_MS
        return _fail(f"--until {_local(until, tz)} makes a window of {days:.0f} days (more than "
                     f"{MAX_WINDOW_DAYS}): check the date, or add --force", 1)
    window = store.add_maintenance(args.room, start, until, reason, by, now)
    print(f"maintenance window {window}: room {args.room} from {_local(start, tz)} until {_local(until, tz)}")
    return 0


def _maintenance_list(args: argparse.Namespace, config: Config) -> int:
    if args.list_room is not None and args.list_room not in {room.id for room in config.rooms}:
        return _fail(_unknown_room(args.list_room, config), 1)
    tz = config.site.tz
    reader = _reader(config)
    try:
        windows = [] if reader is None else reader.maintenance_windows(now_ms(), args.list_room)
    finally:
        if reader is not None:
            reader.close()
    if args.format == "json":
        print(json.dumps([_with_times(w, tz) for w in windows], ensure_ascii=False, indent=2))
        return 0
    language = args.lang or _language(config)
    if not windows:
        if language == "zh":
            print("没有进行中或计划中的维护窗口" + (f"（库房 {args.list_room}）" if args.list_room else ""))
        else:
            print("no active or future maintenance windows" + (f" in room {args.list_room}" if args.list_room else ""))
        return 0
    rows: list[tuple[str, ...]] = [_WINDOW_HEADINGS[language]]
    rows += [(str(w["id"]), w["room"], _local(w["start_ms"], tz), _local(w["end_ms"], tz), w["by"], w["reason"])
             for w in windows]
    print("\n".join(_table(rows)))
    return 0


def _maintenance_end(args: argparse.Namespace, config: Config, store: AlertStore) -> int:
    by = (args.by or "").strip()
    if not by:
        return _fail("alerts maintenance --end: --by NAME is required (who ends the window)")
    now = now_ms()
    try:
        window = store.end_maintenance(args.end, by, args.comment.strip(), now)
    except KeyError:
        return _fail(f"no maintenance window with id {args.end}", 1)
    tz = config.site.tz
    if window["start_ms"] > now:
        print(f"maintenance window {args.end}: room {window['room']} called off (it was to start "
              f"{_local(window['start_ms'], tz)})")
    else:
        print(f"maintenance window {args.end}: room {window['room']} ended at {_local(now, tz)} "
              f"(was until {_local(window['end_ms'], tz)}); its rules are judged again")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    try:
        _, store = _with_store(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        verdict = store.verify_audit()
    finally:
        store.close()
    print(verdict)
    return 0 if verdict.ok else 1


def _replay(args: argparse.Namespace) -> int:
    # the transitions are the output; per-notification log lines would drown them
    logging.getLogger("alerts").setLevel(logging.WARNING)
    try:
        if args.profile:
            tz_name = args.tz or "Asia/Shanghai"
            if args.config or os.environ.get("ARCHMON_CONFIG"):
                tz_name = args.tz or _load(args).site.timezone
            tz = ZoneInfo(tz_name)
            rows = read_readings_csv(args.readings, tz)
            config = profile_config(args.profile, rows, tz_name)
        else:
            config = _load(args)
            tz = ZoneInfo(args.tz) if args.tz else config.site.tz
            rows = read_readings_csv(args.readings, tz)
        until = parse_iso_ms(args.until, tz) if args.until else None
        run_replay(rows, config, db_path=args.db or ":memory:", until_ms=until,
                   emit=lambda t: print(t.to_json(config.site.tz), flush=True))
    except ConfigError as exc:
        return _fail(str(exc))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        return _fail(f"replay: {exc}")
    except OSError as exc:
        return _fail(f"replay: cannot read {args.readings}: {exc.strerror}")
    return 0
