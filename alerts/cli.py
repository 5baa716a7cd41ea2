"""``archmon standards | alerts | audit | replay``: registered on the main parser by ``add_commands``."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts._cli_common import (
    config_path,
    fail,
    language_of,
    load,
    local_time,
    reader_for,
    table,
    with_store,
    with_times,
)
from alerts._cli_maintenance import MAX_WINDOW_DAYS, alerts_maintenance
from alerts.actions import acknowledge, clear_by_hand
from alerts.messages import SEVERITY_NAMES, STATE_NAMES
from alerts.profiles import StandardProfile, list_profiles, load_profile
from alerts.replay import profile_config, read_readings_csv, run_replay
from archmon.errors import ConfigError
from archmon.timeutil import now_ms, parse_iso_ms

__all__ = ["MAX_WINDOW_DAYS", "add_commands", "config_path"]


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
    p.set_defaults(func=alerts_maintenance)

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
        return fail(str(exc))
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


_LIST_HEADINGS = {"zh": ("编号", "更新时间", "级别", "状态", "标题"),
                  "en": ("id", "updated", "severity", "state", "title")}


def _alerts_list(args: argparse.Namespace) -> int:
    try:
        config = load(args)
    except ConfigError as exc:
        return fail(str(exc))
    reader = reader_for(config)
    tz = config.site.tz
    try:
        rows = [] if reader is None else reader.alerts(active_only=args.active, fired_only=not args.all)
        if args.format == "json":
            for row in rows:
                assert reader is not None
                row["comments"] = [with_times(c, tz) for c in reader.comments(row["id"])]
            print(json.dumps([with_times(row, tz) for row in rows], ensure_ascii=False, indent=2))
            return 0
        language = args.lang or language_of(config)
        which = 0 if language == "zh" else 1
        lines: list[tuple[str, ...]] = [_LIST_HEADINGS[language]]
        for row in rows:
            state = STATE_NAMES.get(row["state"], (row["state"], row["state"]))[which]
            severity = SEVERITY_NAMES.get(row["severity"], (row["severity"], row["severity"]))[which]
            text = row["title_zh"] if which == 0 else row["title_en"]
            lines.append((str(row["id"]), local_time(row["updated_ms"], tz), severity, state, text))
        print("\n".join(table(lines)))
        if not rows:
            print("没有告警" if language == "zh" else "no alerts")
        return 0
    finally:
        if reader is not None:
            reader.close()


def _alerts_ack(args: argparse.Namespace) -> int:
    return _alert_action(args, acknowledge)


def _alerts_clear(args: argparse.Namespace) -> int:
    return _alert_action(args, clear_by_hand)


def _alert_action(args: argparse.Namespace, action: Any) -> int:
    try:
        _, store = with_store(args)
    except ConfigError as exc:
        return fail(str(exc))
    try:
        transitions = action(store, args.id, args.by, args.comment, now_ms())
    except KeyError:
        return fail(f"no alert with id {args.id}", 1)
    except ValueError as exc:
        return fail(str(exc), 1)
    finally:
        store.close()
    for transition in transitions:
        print(f"alert {transition.alert}: {transition.state}")
    if not transitions:
        print(f"alert {args.id}: comment added")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    try:
        _, store = with_store(args)
    except ConfigError as exc:
        return fail(str(exc))
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
                tz_name = args.tz or load(args).site.timezone
            tz = ZoneInfo(tz_name)
            rows = read_readings_csv(args.readings, tz)
            config = profile_config(args.profile, rows, tz_name)
        else:
            config = load(args)
            tz = ZoneInfo(args.tz) if args.tz else config.site.tz
            rows = read_readings_csv(args.readings, tz)
        until = parse_iso_ms(args.until, tz) if args.until else None
        run_replay(rows, config, db_path=args.db or ":memory:", until_ms=until,
                   emit=lambda t: print(t.to_json(config.site.tz), flush=True))
    except ConfigError as exc:
        return fail(str(exc))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        return fail(f"replay: {exc}")
    except OSError as exc:
        return fail(f"replay: cannot read {args.readings}: {exc.strerror}")
    return 0
