"""``archmon standards | alerts | audit | replay``: registered on the main parser by ``add_commands``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.actions import acknowledge, clear_by_hand
from alerts.messages import STATE_NAMES
from alerts.profiles import StandardProfile, list_profiles, load_profile
from alerts.replay import profile_config, read_readings_csv, run_replay
from alerts.store import AlertStore
from archmon.config import Config, load_config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms, parse_iso_ms, to_iso

__all__ = ["add_commands", "config_path"]


def config_path(args: argparse.Namespace) -> Path:
    """``--config``, else ``$ARCHMON_CONFIG``, else ``./archmon.toml``."""
    given = getattr(args, "config", None)
    return Path(given or os.environ.get("ARCHMON_CONFIG") or "archmon.toml")


def _load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def _store(config: Config) -> AlertStore:
    return AlertStore(config.resolve(config.storage.sqlite_path))


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
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_alerts_list)
    for name, func, help_text in (("ack", _alerts_ack, "acknowledge an alert"),
                                  ("clear", _alerts_clear, "clear an alert by hand")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("id", type=int)
        p.add_argument("--by", required=True, help="who (name)")
        p.add_argument("--comment", required=True)
        p.set_defaults(func=func)
    p = sub.add_parser("maintenance", parents=[common], help="silence a room's non-critical rules until a time")
    p.add_argument("room")
    p.add_argument("--until", required=True, help="ISO-8601 end (site zone if no offset)")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", default=os.environ.get("USER", "cli"))
    p.add_argument("--start", help="ISO-8601 start (default now)")
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


def _alerts_list(args: argparse.Namespace) -> int:
    try:
        config, store = _with_store(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        rows = store.alerts(active_only=args.active)
        if args.format == "json":
            for row in rows:
                row["comments"] = store.comments(row["id"])
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return 0
        tz = config.site.tz
        zh = config.site.language == "zh"
        for row in rows:
            state = STATE_NAMES.get(row["state"], (row["state"], row["state"]))[0 if zh else 1]
            text = row["title_zh"] if zh else row["title_en"]
            print(f"{row['id']:>5} {to_iso(row['updated_ms'], tz)[:19]} {row['severity']:8} {state:6} {text}")
        return 0
    finally:
        store.close()


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


def _alerts_maintenance(args: argparse.Namespace) -> int:
    try:
        config, store = _with_store(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        rooms = {room.id for room in config.rooms}
        if args.room not in rooms:
            return _fail(f"unknown room {args.room!r}; known: {sorted(rooms)}", 1)
        tz = config.site.tz
        start = parse_iso_ms(args.start, tz) if args.start else now_ms()
        until = parse_iso_ms(args.until, tz)
        window = store.add_maintenance(args.room, start, until, args.reason, args.by, now_ms())
    except ValueError as exc:
        return _fail(str(exc), 1)
    finally:
        store.close()
    print(f"maintenance window {window}: room {args.room} until {to_iso(until, tz)}")
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
