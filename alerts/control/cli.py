"""``archmon control on|off|auto|status``: people stay in charge of the switched devices.

``archmon control off dehum1 --for 2h --by 张三 --reason "更换滤网"`` puts a device under manual control
(off, or on) until the time is up; ``auto`` hands it back to its loop at once. The running service takes
an override at its next tick (a few seconds) and the equipment protection still applies (minimum on/off
times, maximum run). Every override, its end and its expiry are in the audit log (``archmon audit verify``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from alerts._cli_common import fail, language_of, load, local_time, table
from alerts.control.plan import load_plans
from alerts.control.records import ControlRecords
from archmon.config import Config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms

__all__ = ["MAX_OVERRIDE_S", "add_commands", "parse_duration"]

MAX_OVERRIDE_S = 7 * 86_400  # a longer override is a configuration change (enabled = false), not an override
DEFAULT_OVERRIDE_S = 3600
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?\s*$", re.I)


def parse_duration(text: str) -> int:
    """``2h``, ``90m``, ``1h30m``, ``1d``, ``45s`` (or plain seconds) as seconds.

    Raises:
        ValueError: not such a duration, or zero.
    """
    if text.strip().isdigit():
        seconds = int(text)
    else:
        match = _DURATION.match(text)
        if not match or not any(match.groups()):
            raise ValueError(f"--for: not a duration: {text!r} (e.g. 2h, 90m, 1h30m, 1d)")
        days, hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds <= 0:
        raise ValueError(f"--for: must be longer than zero, got {text!r}")
    return seconds


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``control on|off|auto|status`` on the main parser's subparsers."""
    control = subparsers.add_parser("control", help="switch a dehumidifier, humidifier or air conditioner by hand, "
                                                    "or hand it back to its loop")
    sub = control.add_subparsers(dest="control_command", required=True)
    for state in ("on", "off"):
        p = sub.add_parser(state, parents=[common],
                           help=f"keep a device {state} until --for runs out (manual override)")
        p.add_argument("device", help="actuator id ([[actuators]] id)")
        p.add_argument("--for", dest="duration", default=f"{DEFAULT_OVERRIDE_S}s",
                       help=f"how long (2h, 90m, 1h30m; default 1h, at most {MAX_OVERRIDE_S // 86_400} days)")
        p.add_argument("--by", required=True, help="who (name)")
        p.add_argument("--reason", required=True, help="why")
        p.set_defaults(func=_override, state=state)
    p = sub.add_parser("auto", parents=[common], help="end a manual override: back to automatic control")
    p.add_argument("device")
    p.add_argument("--by", required=True)
    p.add_argument("--reason", default="back to automatic control")
    p.set_defaults(func=_auto)
    p = sub.add_parser("status", parents=[common],
                       help="every device: last switch, override, run hours in the last 24 h")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_status)


def _records(config: Config) -> ControlRecords:
    return ControlRecords(config.resolve(config.storage.sqlite_path))


def _device(config: Config, ident: str) -> str | None:
    known = {plan.id for plan in load_plans(config)}
    if ident not in known:
        return f"unknown device {ident!r} (known: {', '.join(sorted(known)) or 'none configured'})"
    return None


def _override(args: argparse.Namespace) -> int:
    try:
        config = load(args)
        problem = _device(config, args.device)
        seconds = parse_duration(args.duration)
    except (ConfigError, ValueError) as exc:
        return fail(f"control {args.state}: {exc}")
    if problem:
        return fail(f"control {args.state}: {problem}", 1)
    if seconds > MAX_OVERRIDE_S:
        return fail(f"control {args.state}: --for {args.duration} is longer than {MAX_OVERRIDE_S // 86_400} days; "
                    f"disable the device in the configuration instead", 1)
    now = now_ms()
    records = _records(config)
    try:
        ident = records.set_override(args.device, args.state == "on", now, now + seconds * 1000, args.by, args.reason)
    except ValueError as exc:
        return fail(f"control {args.state}: {exc}", 1)
    finally:
        records.close()
    until = local_time(now + seconds * 1000, config.site.tz)
    print(f"override {ident}: {args.device} {args.state.upper()} until {until} (by {args.by.strip()}); "
          f"equipment protection (minimum on/off times, maximum run) still applies")
    return 0


def _auto(args: argparse.Namespace) -> int:
    try:
        config = load(args)
        problem = _device(config, args.device)
    except ConfigError as exc:
        return fail(f"control auto: {exc}")
    if problem:
        return fail(f"control auto: {problem}", 1)
    records = _records(config)
    try:
        ended = records.end_override(args.device, now_ms(), args.by, args.reason)
    finally:
        records.close()
    if ended is None:
        print(f"{args.device}: no manual override; it is under automatic control")
    else:
        print(f"override {ended.id} ended: {args.device} back to automatic control")
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        config = load(args)
        plans = load_plans(config)
    except ConfigError as exc:
        return fail(f"control status: {exc}")
    tz, zh = config.site.tz, language_of(config) == "zh"
    now = now_ms()
    records = _records(config)
    rows = []
    try:
        overrides = records.active_overrides(now)
        for plan in plans:
            last = records.last_switch(plan.id)
            override = overrides.get(plan.id)
            rows.append({
                "device": plan.id, "name": plan.config.label, "room": plan.config.room,
                "controls": plan.config.controls,
                "start_at": plan.loop.start_at, "stop_at": plan.loop.stop_at,
                "state": None if last is None else ("on" if last.on else "off"),
                "since": None if last is None else local_time(last.ts_ms, tz),
                "override": None if override is None else {"state": "on" if override.on else "off",
                                                           "until": local_time(override.until_ms, tz),
                                                           "by": override.by, "reason": override.reason},
                "run_hours_24h": round(records.run_ms(plan.id, now - 86_400_000, now) / 3_600_000, 2),
            })
    finally:
        records.close()
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("没有配置调控设备" if zh else "no actuators configured")
        return 0
    head = ("设备", "库房", "状态", "自", "人工控制", "24 小时运行") if zh else (
        "device", "room", "state", "since", "override", "run 24 h")
    lines = [head]
    for row in rows:
        override = row["override"]
        lines.append((f"{row['device']} {row['name']}", row["room"], row["state"] or "?", row["since"] or "-",
                      f"{override['state']} → {override['until']} ({override['by']})" if override else "auto",
                      f"{row['run_hours_24h']:g} h"))
    print("\n".join(table(lines)), file=sys.stdout)
    return 0
