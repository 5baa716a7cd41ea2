"""``archmon notify test | log | channels``: registered on the main parser by :func:`add_commands`."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from alerts.notify.channels import OutgoingMessage, Recipient
from alerts.notify.outbox import Outbox
from alerts.notify.render import local_time
from alerts.notify.settings import build_channels, load_notify
from archmon.config import Config, load_config
from archmon.sqlite import connect
from archmon.timeutil import now_ms

__all__ = ["add_commands", "channel_report", "format_channel"]


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(getattr(args, "config", None) or os.environ.get("ARCHMON_CONFIG") or "archmon.toml"))


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``notify test``, ``notify log`` and ``notify channels``.

    Args:
        subparsers: the main parser's subparsers.
        common: parent parser providing ``--config`` (added to every leaf command).
    """
    notify = subparsers.add_parser("notify", help="notification channels: send a test, show the log and channels")
    sub = notify.add_subparsers(dest="notify_command", required=True)
    p = sub.add_parser("test", parents=[common], help="send one message now and print the provider's answer")
    p.add_argument("--channel", required=True, help="channel name ([notify.channels.NAME])")
    p.add_argument("--to", required=True, metavar="RECIPIENT",
                   help="phone number, e-mail address, a contact's name, or the channel name for a robot")
    p.add_argument("--text", default=None, help="the message (default: a test text naming the site)")
    p.set_defaults(func=_test)
    p = sub.add_parser("log", parents=[common], help="deliveries and their attempts, newest first")
    p.add_argument("--alert", type=int, default=None, metavar="ID", help="only deliveries about this alert")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_log)
    p = sub.add_parser("channels", parents=[common], help="configured channels and their state")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_channels)


def _test(args: argparse.Namespace) -> int:
    config = _config(args)
    plan = load_notify(config)
    channels = build_channels(plan)
    channel = channels.get(args.channel)
    if channel is None:
        print(f"archmon notify test: unknown channel {args.channel!r}; known: {sorted(channels)}", file=sys.stderr)
        return 2
    to = args.to
    contact = next((c for c in plan.config.contacts if c.name == to), None)
    if contact is not None and channel.address_field is not None:
        to = getattr(contact, channel.address_field) or ""
        if not to:
            print(f"archmon notify test: contact {contact.name!r} has no {channel.address_field}", file=sys.stderr)
            return 2
    zh = (plan.config.language or config.site.language) == "zh"
    text = args.text or (f"archmon 测试消息：{config.site.name} 的通道 {channel.name} 工作正常。" if zh
                         else f"archmon test message: channel {channel.name} of {config.site.name} works.")
    subject = "archmon 测试 / test" if zh else "archmon test"
    message = OutgoingMessage(subject=subject, text=text, short=text, html=f"<p>{text}</p>",
                              data={"test": True, "site": config.site.name})
    outbox = _outbox(config, create=True)
    now = now_ms()
    delivery = None
    if outbox is not None:
        delivery_id = outbox.add_direct(kind="test", channel=channel.name, recipient=to, contact=None,
                                        language="zh" if zh else "en", payload={"text": text, "subject": subject},
                                        now_ms=now, sending=True)
        delivery = outbox.delivery(delivery_id)
    try:
        result = channel.send(message, Recipient(to, contact.name if contact else None))
        if result.outcome != "accepted" and channel.type == "gsm_modem" and "lock" in result.answer:
            result = type(result)(result.outcome, result.answer + " (is `archmon run` holding the modem? stop it "
                                  "for a test, or watch `archmon notify log` while it runs)")
    finally:
        channel.close()
    if outbox is not None:
        if delivery is not None:
            outbox.finish([delivery], outcome=result.outcome, answer=result.answer, now_ms=now_ms(), next_ms=None)
        outbox.close()
    print(f"{channel.name} ({channel.type}) → {to}: {result.outcome}")
    print(f"provider answer: {result.answer}")
    return 0 if result.accepted else 1


def _outbox(config: Config, *, create: bool = False) -> Outbox | None:
    path = config.resolve(config.storage.sqlite_path)
    if not path.exists() and not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return Outbox(path)


def _log(args: argparse.Namespace) -> int:
    config = _config(args)
    outbox = _outbox(config)
    rows = [] if outbox is None else outbox.log(args.alert, args.limit)
    if outbox is not None:
        outbox.close()
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    tz = config.site.tz
    if not rows:
        print("no deliveries" + (f" about alert {args.alert}" if args.alert is not None else ""))
    for row in rows:
        dup = " POSSIBLE DUPLICATE" if row["possible_duplicate"] else ""
        print(f"#{row['id']} alert {row['alert_id'] or '-'} {row['kind']} level {row['level']} "
              f"{row['channel']} → {row['contact'] or row['recipient']}: {row['status']}{dup} "
              f"(route {row['route']}, attempts {row['attempts']})")
        for attempt in row["attempts_list"]:
            nxt = f", next try {local_time(attempt['next_ms'], tz)}" if attempt["next_ms"] else ""
            print(f"    {local_time(attempt['started_ms'], tz)} {attempt['outcome']}: {attempt['answer'] or ''}{nxt}")
    return 0


def channel_report(config: Config) -> list[dict[str, Any]]:
    """Each configured channel with its persisted state (for ``archmon status`` and ``notify channels``)."""
    try:
        plan = load_notify(config)
    except Exception as exc:  # a broken [notify] table: status still shows the rest
        return [{"channel": "-", "type": "-", "state": f"config error: {exc}"}]
    states = _channel_states(config)
    tz = config.site.tz
    out = []
    for name, kind in plan.channel_types.items():
        state = states.get(name, {})
        out.append({
            "channel": name, "type": kind, "state": state.get("state", "unknown"),
            "failures": state.get("failures", 0),
            "last_success": local_time(state["last_success_ms"], tz) if state.get("last_success_ms") else None,
            "last_failure": local_time(state["last_failure_ms"], tz) if state.get("last_failure_ms") else None,
            "last_error": state.get("last_error"), "details": state.get("details", {}),
        })
    return out


def _channel_states(config: Config) -> dict[str, dict[str, Any]]:
    """The persisted channel states, read-only (safe while ``archmon run`` runs; nothing if none yet)."""
    path = config.resolve(config.storage.sqlite_path)
    if not path.exists():
        return {}
    conn = connect(path, readonly=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM notify_channel_state").fetchall()
    except sqlite3.OperationalError:  # no notifier has run on this file yet
        return {}
    finally:
        conn.close()
    return {r["channel"]: {**dict(r), "details": json.loads(r["details"])} for r in rows}


def format_channel(item: dict[str, Any]) -> str:
    """One line per channel: state, last success and failure, modem registration and signal."""
    details = item.get("details") or {}
    extra = ""
    if item["type"] == "gsm_modem" and details:
        signal = details.get("signal")
        extra = (f", SIM {details.get('sim')}, {details.get('registration')}, signal "
                 f"{signal['dbm']} dBm (CSQ {signal['rssi']})" if signal else
                 f", SIM {details.get('sim')}, {details.get('registration')}, signal unknown")
    error = f", last error: {item['last_error']}" if item.get("last_error") and item["state"] != "ok" else ""
    return (f"{item['channel']} ({item['type']}): {item['state']}; last success {item.get('last_success') or '-'}, "
            f"last failure {item.get('last_failure') or '-'}{extra}{error}")


def _channels(args: argparse.Namespace) -> int:
    config = _config(args)
    report = channel_report(config)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    if not report:
        print("no notification channels configured ([notify.channels.NAME] in the config)")
    for item in report:
        print(format_channel(item))
    return 0
