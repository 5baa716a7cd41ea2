"""``archmon user add|list|disable|enable|passwd|token`` and ``archmon access open|close|list``.

``archmon user token NAME [--label L] [--expires-days N]`` makes an API token (shown once);
``archmon user token --list [NAME]`` lists tokens by id, ``archmon user token --revoke ID`` revokes one.

Registered on the main parser by :func:`add_commands`. Passwords are never arguments (they would end up
in the shell history and ``ps``): they are prompted for twice, or read from the first line of stdin
with ``--password-stdin``.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
from pathlib import Path

from alerts.access import AccessError, AccessRegister
from archmon.config import Config, load_config
from archmon.errors import ConfigError
from archmon.timeutil import now_ms, to_iso
from dashboards.web.users import ROLES, UserError, UserStore

__all__ = ["add_commands"]


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(getattr(args, "config", None) or os.environ.get("ARCHMON_CONFIG") or "archmon.toml"))


def _db(config: Config) -> Path:
    path = config.resolve(config.storage.sqlite_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _actor(args: argparse.Namespace) -> str:
    return getattr(args, "by", None) or os.environ.get("USER") or "cli"


def _fail(message: str) -> int:
    print(f"archmon: {message}", file=sys.stderr)
    return 2


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("repeat: ") != first:
        raise UserError("the two passwords differ")
    return first


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``user`` and ``access`` on the main parser's subparsers.

    Args:
        subparsers: the main parser's subparsers.
        common: parent parser providing ``--config`` (added to every leaf command).
    """
    user = subparsers.add_parser("user", help="dashboard users (no default password: add the first admin here)")
    sub = user.add_subparsers(dest="user_command", required=True)
    p = sub.add_parser("add", parents=[common], help="create a user; the password is prompted (or --password-stdin)")
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, default="viewer")
    p.add_argument("--language", choices=("zh", "en"))
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=_user_add)
    p = sub.add_parser("list", parents=[common], help="list users")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_user_list)
    for name, disabled in (("disable", True), ("enable", False)):
        p = sub.add_parser(name, parents=[common], help=f"{name} a user ({'ends their sessions' if disabled else ''})")
        p.add_argument("name")
        p.set_defaults(func=_user_disable, disabled=disabled)
    p = sub.add_parser("passwd", parents=[common], help="set a user's password (ends their sessions)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=_user_passwd)
    p = sub.add_parser("token", parents=[common], help="create, list (--list) or revoke (--revoke ID) API tokens")
    p.add_argument("name", nargs="?", help="the user the new token acts as (with --list: only their tokens)")
    p.add_argument("--label", default="script")
    p.add_argument("--expires-days", type=float, metavar="DAYS", help="the new token stops working after DAYS")
    p.add_argument("--list", action="store_true", help="list tokens: id, user, label, created, last used, expiry")
    p.add_argument("--revoke", metavar="ID", help="revoke the token with this id (from --list)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_user_token)

    access = subparsers.add_parser("access", help="the store access register (三不查阅: at least two people)")
    sub = access.add_subparsers(dest="access_command", required=True)
    p = sub.add_parser("open", parents=[common], help="open an access session for a store")
    p.add_argument("room")
    p.add_argument("--person", action="append", required=True, metavar="NAME",
                   help="someone entering (repeat: at least two)")
    p.add_argument("--purpose", required=True)
    p.add_argument("--approval", required=True, help="approval number")
    p.add_argument("--by", help="who registers it (default $USER)")
    p.set_defaults(func=_access_open)
    p = sub.add_parser("close", parents=[common], help="close an access session")
    p.add_argument("id", type=int)
    p.add_argument("--note", default="")
    p.add_argument("--by", help="who closes it (default $USER)")
    p.set_defaults(func=_access_close)
    p = sub.add_parser("list", parents=[common], help="list access sessions, newest first")
    p.add_argument("--room")
    p.add_argument("--open", action="store_true", help="only open sessions")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_access_list)


def _users(args: argparse.Namespace) -> UserStore:
    return UserStore(_db(_config(args)))


def _user_add(args: argparse.Namespace) -> int:
    try:
        store = _users(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        user = store.add(args.name, args.role, _read_password(args), by=_actor(args), language=args.language)
    except UserError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(f"user {user.name} ({user.role}) created")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    store = _users(args)
    try:
        users = store.users()
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps([{"name": u.name, "role": u.role, "disabled": u.disabled, "language": u.language,
                           "created": to_iso(u.created_ms)} for u in users], ensure_ascii=False, indent=2))
        return 0
    for u in users:
        print(f"{u.name:20} {u.role:9} {'disabled' if u.disabled else 'active':9} {to_iso(u.created_ms)}")
    return 0


def _user_disable(args: argparse.Namespace) -> int:
    store = _users(args)
    try:
        store.set_disabled(args.name, args.disabled, by=_actor(args))
    except UserError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(f"user {args.name} {'disabled' if args.disabled else 'enabled'}")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    store = _users(args)
    try:
        store.set_password(args.name, _read_password(args), by=_actor(args))
    except UserError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(f"password of {args.name} changed; their sessions ended")
    return 0


def _user_token(args: argparse.Namespace) -> int:
    if args.list and args.revoke:
        return _fail("--list and --revoke: one at a time")
    store = _users(args)
    try:
        if args.list:
            return _token_list(store, args)
        if args.revoke:
            revoked = store.revoke_token(args.revoke, by=_actor(args))
            print(f"token {revoked.id} ({revoked.label}) of {revoked.user} revoked")
            return 0
        if not args.name:
            return _fail("user token: name the user the token acts as (or --list, --revoke ID)")
        expires = None
        if args.expires_days is not None:
            if not 0 < args.expires_days <= 3650:
                return _fail("--expires-days: more than 0, at most 3650")
            expires = now_ms() + int(args.expires_days * 86_400_000)
        token = store.create_token(args.name, args.label, by=_actor(args), expires_ms=expires)
    except UserError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(token)
    print("(shown once: send it as 'Authorization: Bearer TOKEN')", file=sys.stderr)
    return 0


def _token_list(store: UserStore, args: argparse.Namespace) -> int:
    tokens = store.tokens(args.name or None)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(t) for t in tokens], ensure_ascii=False, indent=2))
        return 0
    now = now_ms()
    for t in tokens:
        used = to_iso(t.last_used_ms)[:16] if t.last_used_ms else "never used"
        expiry = "no expiry" if t.expires_ms is None else (("expired " if t.expired(now) else "expires ")
                                                          + to_iso(t.expires_ms)[:16])
        print(f"{t.id}  {t.user:16} {t.label:20} {to_iso(t.created_ms)[:16]}  {used:16}  {expiry}")
    return 0


def _register(args: argparse.Namespace) -> tuple[Config, AccessRegister]:
    config = _config(args)
    return config, AccessRegister(_db(config))


def _access_open(args: argparse.Namespace) -> int:
    config, register = _register(args)
    try:
        if args.room not in {r.id for r in config.rooms}:
            return _fail(f"unknown room {args.room!r}; known: {sorted(r.id for r in config.rooms)}")
        session = register.open_session(args.room, args.person, args.purpose, args.approval, _actor(args))
    except AccessError as exc:
        return _fail(str(exc))
    finally:
        register.close()
    print(f"access session {session.id} open in {session.room}: {', '.join(session.people)}")
    return 0


def _access_close(args: argparse.Namespace) -> int:
    _, register = _register(args)
    try:
        session = register.close_session(args.id, _actor(args), note=args.note)
    except KeyError:
        return _fail(f"unknown access session {args.id}")
    except AccessError as exc:
        return _fail(str(exc))
    finally:
        register.close()
    print(f"access session {session.id} in {session.room} closed")
    return 0


def _access_list(args: argparse.Namespace) -> int:
    config, register = _register(args)
    try:
        sessions = register.sessions(room=args.room, open_only=args.open)
    finally:
        register.close()
    if args.format == "json":
        print(json.dumps([s.to_dict() for s in sessions], ensure_ascii=False, indent=2))
        return 0
    tz = config.site.tz
    for s in sessions:
        closed = to_iso(s.closed_ms, tz)[:16] if s.closed_ms else "open"
        print(f"{s.id:5} {s.room:10} {to_iso(s.opened_ms, tz)[:16]} → {closed:16} {', '.join(s.people)} "
              f"[{s.approval}] {s.purpose}")
    return 0
