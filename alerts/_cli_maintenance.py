"""``archmon alerts maintenance``: open, list (text or JSON) and end maintenance windows, every time in the
site's zone with its offset."""

from __future__ import annotations

import argparse
import json
import os

from alerts._cli_common import (
    fail,
    iso_option,
    language_of,
    load,
    local_time,
    reader_for,
    table,
    unknown_room,
    with_store,
    with_times,
)
from alerts.store import AlertStore
from archmon.config import Config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms

__all__ = ["DAY_MS", "MAX_WINDOW_DAYS", "WINDOW_HEADINGS", "alerts_maintenance"]

MAX_WINDOW_DAYS = 30  # a longer maintenance window needs --force (a typo in --until must not silence a room)
DAY_MS = 86_400_000
WINDOW_HEADINGS = {"zh": ("编号", "库房", "开始", "结束", "操作人", "原因"),
                   "en": ("id", "room", "start", "end", "by", "reason")}


def alerts_maintenance(args: argparse.Namespace) -> int:
    modes = [name for name, given in (("ROOM", args.room is not None), ("--list", args.list),
                                      ("--end", args.end is not None)) if given]
    if len(modes) != 1:
        what = " and ".join(modes) if modes else "nothing"
        return fail(f"alerts maintenance: give one of ROOM (open a window), --list or --end ID, not {what}")
    stray = {"--list": ("--until", "--reason", "--start", "--force", "--comment", "--by"),
             "--end": ("--until", "--reason", "--start", "--force", "--room", "--lang"),
             "ROOM": ("--room", "--comment", "--lang")}[modes[0]]
    for option in stray:
        if getattr(args, {"--room": "list_room"}.get(option, option[2:])) not in (None, False, ""):
            return fail(f"alerts maintenance: {option} does not go with {modes[0]}")
    if args.format != "text" and not args.list:
        return fail(f"alerts maintenance: --format does not go with {modes[0]}")
    if args.list:
        try:
            return _maintenance_list(args, load(args))
        except ConfigError as exc:
            return fail(str(exc))
    try:
        config, store = with_store(args)
    except ConfigError as exc:
        return fail(str(exc))
    try:
        if args.end is not None:
            return _maintenance_end(args, config, store)
        return _maintenance_open(args, config, store)
    except ValueError as exc:
        return fail(str(exc), 1)
    finally:
        store.close()


def _maintenance_open(args: argparse.Namespace, config: Config, store: AlertStore) -> int:
    if args.room not in {room.id for room in config.rooms}:
        return fail(unknown_room(args.room, config), 1)
    if args.until is None:
        return fail("alerts maintenance: --until is required to open a window")
    reason = (args.reason or "").strip()
    if not reason:
        return fail("alerts maintenance: --reason is required and must not be empty", 1)
    by = (args.by or os.environ.get("USER") or "cli").strip()
    tz = config.site.tz
    now = now_ms()
    start = iso_option("--start", args.start, tz) if args.start else now
    until = iso_option("--until", args.until, tz)
    if until <= start:
        what = f"the start {local_time(start, tz)}" if args.start else f"now ({local_time(now, tz)})"
        return fail(f"--until {local_time(until, tz)} is not after {what}", 1)
    if until <= now:
        return fail(f"--until {local_time(until, tz)} is in the past", 1)
    if until - start > MAX_WINDOW_DAYS * DAY_MS and not args.force:
        days = (until - start) / DAY_MS
        return fail(f"--until {local_time(until, tz)} makes a window of {days:.0f} days (more than "
                     f"{MAX_WINDOW_DAYS}): check the date, or add --force", 1)
    window = store.add_maintenance(args.room, start, until, reason, by, now)
    print(f"maintenance window {window}: room {args.room} from {local_time(start, tz)} until {local_time(until, tz)}")
    return 0


def _maintenance_list(args: argparse.Namespace, config: Config) -> int:
    if args.list_room is not None and args.list_room not in {room.id for room in config.rooms}:
        return fail(unknown_room(args.list_room, config), 1)
    tz = config.site.tz
    reader = reader_for(config)
    try:
        windows = [] if reader is None else reader.maintenance_windows(now_ms(), args.list_room)
    finally:
        if reader is not None:
            reader.close()
    if args.format == "json":
        print(json.dumps([with_times(w, tz) for w in windows], ensure_ascii=False, indent=2))
        return 0
    language = args.lang or language_of(config)
    if not windows:
        if language == "zh":
            print("没有进行中或计划中的维护窗口" + (f"（库房 {args.list_room}）" if args.list_room else ""))
        else:
            print("no active or future maintenance windows" + (f" in room {args.list_room}" if args.list_room else ""))
        return 0
    rows: list[tuple[str, ...]] = [WINDOW_HEADINGS[language]]
    rows += [(str(w["id"]), w["room"], local_time(w["start_ms"], tz), local_time(w["end_ms"], tz), w["by"], w["reason"])
             for w in windows]
    print("\n".join(table(rows)))
    return 0


def _maintenance_end(args: argparse.Namespace, config: Config, store: AlertStore) -> int:
    by = (args.by or "").strip()
    if not by:
        return fail("alerts maintenance --end: --by NAME is required (who ends the window)")
    now = now_ms()
    try:
        window = store.end_maintenance(args.end, by, args.comment.strip(), now)
    except KeyError:
        return fail(f"no maintenance window with id {args.end}", 1)
    tz = config.site.tz
    if window["start_ms"] > now:
        print(f"maintenance window {args.end}: room {window['room']} called off (it was to start "
              f"{local_time(window['start_ms'], tz)})")
    else:
        print(f"maintenance window {args.end}: room {window['room']} ended at {local_time(now, tz)} "
              f"(was until {local_time(window['end_ms'], tz)}); its rules are judged again")
    return 0


