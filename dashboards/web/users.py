"""Dashboard users, their browser sessions and API tokens, in the shared SQLite file.

- Passwords are argon2id hashes (argon2-cffi); there is no default password: every account is made by
  an administrator (``archmon user add``) or by the demo's one-time password (:func:`one_time_admin`).
- Browser sessions and API tokens are random secrets; only their SHA-256 is stored, so a copy of the
  database does not let anyone in. Disabling a user or changing a password ends their sessions; a new
  password also revokes their API tokens. Tokens may expire, can be listed (by an id: the first digits of
  their hash) and revoked, and record when they were last used.
- Every user change, login and failed login goes to the audit hash chain (:func:`alerts.audit.append_audit`)
  in the same transaction as the change itself.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from alerts.audit import SCHEMA as AUDIT_SCHEMA
from alerts.audit import append_audit
from archmon.sqlite import Migration, ReaderPool, connect, migrate, write_tx
from archmon.timeutil import now_ms
from dashboards.web.accounts import (
    MIN_PASSWORD_LENGTH,
    ROLES,
    SEEN_EVERY_MS,
    TOKEN_ID_LENGTH,
    ApiToken,
    NewSession,
    Role,
    User,
    UserError,
    WebSession,
    check_name,
    check_password,
    check_role,
    digest,
    role_at_least,
    unknown_user,
)

SESSION_TTL_MS = 12 * 3600 * 1000

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "ApiToken",
    "NewSession",
    "Role",
    "User",
    "UserError",
    "UserStore",
    "WebSession",
    "default_hasher",
    "one_time_admin",
    "role_at_least",
]

_MIGRATIONS = [
    Migration(1, AUDIT_SCHEMA + """
        CREATE TABLE IF NOT EXISTS web_users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            language TEXT,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS web_sessions (
            token_hash TEXT PRIMARY KEY,
            user TEXT NOT NULL,
            csrf TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            seen_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            address TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user);
        CREATE TABLE IF NOT EXISTS web_api_tokens (
            token_hash TEXT PRIMARY KEY,
            user TEXT NOT NULL,
            label TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            last_used_ms INTEGER
        )
        """, "dashboard users, sessions and API tokens"),
    Migration(2, """
        ALTER TABLE web_api_tokens ADD COLUMN expires_ms INTEGER;
        CREATE INDEX IF NOT EXISTS web_api_tokens_user ON web_api_tokens (user)
        """, "API tokens may expire"),
]


def _user(row: sqlite3.Row | tuple[Any, ...]) -> User:
    return User(str(row[0]), row[1], row[2], bool(row[3]), int(row[4]))


_USER_COLUMNS = "name, role, language, disabled, created_ms"
_TOKEN_COLUMNS = "token_hash, user, label, created_ms, last_used_ms, expires_ms"


def default_hasher() -> PasswordHasher:
    """argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1 lane).

    argon2-cffi's default (RFC 9106's low-memory profile) takes 64 MiB for every hash: a 10,000-sensor site
    measured 228 MB peak instead of 180 at the start (the store hashes once then) and at every login, on
    machines that have a few hundred MB. Hashes made with other parameters still verify, and are made again
    with these at the next login (``check_needs_rehash``).
    """
    return PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


class UserStore:
    """Users, sessions and tokens in the shared SQLite file.

    Args:
        path: the database file (tables created if missing).
        hasher: the argon2 parameters (default: :func:`default_hasher`).
    """

    def __init__(self, path: Path | str, *, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.hasher = hasher or default_hasher()
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))  # equal work for unknown users
        self._lock = threading.Lock()
        self._conn = connect(self.path)
        migrate(self._conn, "web_users", _MIGRATIONS, where=str(self.path))
        self._readers = ReaderPool(self.path)

    def close(self) -> None:
        """Close the connections. Idempotent."""
        self._readers.close()
        with self._lock:
            self._conn.close()

    # -- accounts --------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, *, by: str, language: str | None = None) -> User:
        """Create an account (audited as ``user_add``).

        Raises:
            UserError: bad name, role or password, or the name is taken.
        """
        name, role = check_name(name), check_role(role)
        hashed = self.hasher.hash(check_password(password))
        ts = now_ms()
        with self._lock, write_tx(self._conn) as conn:
            if conn.execute("SELECT 1 FROM web_users WHERE name = ?", (name,)).fetchone():
                raise UserError(f"user {name!r} exists already", "user_exists", name=name)
            conn.execute("INSERT INTO web_users (name, role, password_hash, language, disabled, created_ms, updated_ms)"
                         " VALUES (?, ?, ?, ?, 0, ?, ?)", (name, role, hashed, language, ts, ts))
            append_audit(conn, ts, "user_add", by, f"user:{name}", {"role": role})
        return User(name, role, language, False, ts)

    def get(self, name: str) -> User | None:
        """One account, or None."""
        with self._readers.read() as conn:
            row = conn.execute(f"SELECT {_USER_COLUMNS} FROM web_users WHERE name = ?", (name,)).fetchone()
        return None if row is None else _user(row)

    def users(self) -> list[User]:
        """Every account, by name."""
        with self._readers.read() as conn:
            rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM web_users ORDER BY name").fetchall()
        return [_user(row) for row in rows]

    def _change(self, name: str, by: str, kind: str, payload: dict[str, Any], sets: str, params: tuple[Any, ...],
                *, end_sessions: bool, revoke_tokens: bool = False) -> None:
        ts = now_ms()
        with self._lock, write_tx(self._conn) as conn:
            if conn.execute("SELECT 1 FROM web_users WHERE name = ?", (name,)).fetchone() is None:
                raise unknown_user(name)
            conn.execute(f"UPDATE web_users SET {sets}, updated_ms = ? WHERE name = ?", (*params, ts, name))
            if end_sessions:
                conn.execute("DELETE FROM web_sessions WHERE user = ?", (name,))
            if revoke_tokens:
                revoked = conn.execute("DELETE FROM web_api_tokens WHERE user = ?", (name,)).rowcount
                payload = {**payload, "tokens_revoked": revoked}
            append_audit(conn, ts, kind, by, f"user:{name}", payload)

    def set_password(self, name: str, password: str, *, by: str) -> None:
        """Set a new password, end the user's sessions and revoke their API tokens (audited as
        ``user_password``, with how many tokens were revoked): a reset after a leak locks everything out."""
        hashed = self.hasher.hash(check_password(password))
        self._change(name, by, "user_password", {}, "password_hash = ?", (hashed,), end_sessions=True,
                     revoke_tokens=True)

    def set_disabled(self, name: str, disabled: bool, *, by: str) -> None:
        """Disable (ending every session) or enable an account (audited as ``user_disable``/``user_enable``)."""
        if disabled and by == name:
            raise UserError("you cannot disable your own account", "user_disable_self")
        kind = "user_disable" if disabled else "user_enable"
        self._change(name, by, kind, {}, "disabled = ?", (int(disabled),), end_sessions=disabled)

    def set_role(self, name: str, role: str, *, by: str) -> None:
        """Change a user's role (audited as ``user_role``; their sessions end)."""
        role = check_role(role)
        if by == name and role != "admin":
            raise UserError("you cannot take administrator rights from your own account", "user_demote_self")
        self._change(name, by, "user_role", {"role": role}, "role = ?", (role,), end_sessions=True)

    def set_language(self, name: str, language: str, *, by: str) -> None:
        """Remember a user's language (audited as ``user_language``)."""
        self._change(name, by, "user_language", {"language": language}, "language = ?", (language,),
                     end_sessions=False)

    def verify(self, name: str, password: str) -> User | None:
        """The enabled user with this name and password, or None (the same argon2 work either way)."""
        with self._readers.read() as conn:
            row = conn.execute(f"SELECT {_USER_COLUMNS}, password_hash FROM web_users WHERE name = ?",
                               (name,)).fetchone()
        stored = self._dummy_hash if row is None else str(row[5])
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        user = _user(row)
        if user.disabled:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self._lock, write_tx(self._conn) as conn:
                conn.execute("UPDATE web_users SET password_hash = ? WHERE name = ?",
                             (self.hasher.hash(password), name))
        return user

    # -- audit -----------------------------------------------------------------------------------
    def audit(self, kind: str, actor: str, subject: str, payload: dict[str, Any], *, ts_ms: int | None = None) -> None:
        """Append an audit entry (login, failed login, logout...)."""
        with self._lock, write_tx(self._conn) as conn:
            append_audit(conn, now_ms() if ts_ms is None else ts_ms, kind, actor, subject, payload)

    # -- browser sessions ------------------------------------------------------------------------
    def start_session(self, user: User, *, address: str = "", ttl_ms: int = SESSION_TTL_MS) -> NewSession:
        """A new session for a logged-in user, audited as ``login``."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        ts = now_ms()
        with self._lock, write_tx(self._conn) as conn:
            conn.execute("DELETE FROM web_sessions WHERE expires_ms < ?", (ts,))
            conn.execute("INSERT INTO web_sessions (token_hash, user, csrf, created_ms, seen_ms, expires_ms, address)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (digest(token), user.name, csrf, ts, ts, ts + ttl_ms,
                                                           address))
            append_audit(conn, ts, "login", user.name, f"user:{user.name}", {"address": address})
        return NewSession(token, csrf)

    def session(self, token: str) -> WebSession | None:
        """The live session of a cookie secret (None: unknown, expired, or its user disabled)."""
        if not token:
            return None
        ts = now_ms()
        key = digest(token)
        with self._readers.read() as conn:
            row = conn.execute(
                f"SELECT s.csrf, s.expires_ms, s.seen_ms, {', '.join('u.' + c for c in _USER_COLUMNS.split(', '))}"
                " FROM web_sessions s JOIN web_users u ON u.name = s.user WHERE s.token_hash = ?", (key,)).fetchone()
        if row is None or int(row[1]) < ts:
            return None
        user = _user(row[3:])
        if user.disabled:
            return None
        if ts - int(row[2]) > SEEN_EVERY_MS:
            with self._lock:
                self._conn.execute("UPDATE web_sessions SET seen_ms = ? WHERE token_hash = ?", (ts, key))
        return WebSession(user, str(row[0]), int(row[1]))

    def end_session(self, token: str, *, actor: str) -> None:
        """Log out (audited as ``logout``)."""
        ts = now_ms()
        with self._lock, write_tx(self._conn) as conn:
            cursor = conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (digest(token),))
            if cursor.rowcount:
                append_audit(conn, ts, "logout", actor, f"user:{actor}", {})

    # -- API tokens ------------------------------------------------------------------------------
    def create_token(self, name: str, label: str, *, by: str, expires_ms: int | None = None) -> str:
        """A new API token for scripts acting as ``name`` (audited as ``token_add``); shown once.

        Args:
            expires_ms: when it stops working (None: never; revoke it with :meth:`revoke_token`).
        """
        token = "am_" + secrets.token_urlsafe(32)
        ts = now_ms()
        if expires_ms is not None and expires_ms <= ts:
            raise UserError("a token must expire in the future", "user_token_expiry")
        label = " ".join(label.split())[:100]
        with self._lock, write_tx(self._conn) as conn:
            if conn.execute("SELECT 1 FROM web_users WHERE name = ?", (name,)).fetchone() is None:
                raise unknown_user(name)
            stored = digest(token)
            conn.execute("INSERT INTO web_api_tokens (token_hash, user, label, created_ms, expires_ms)"
                         " VALUES (?, ?, ?, ?, ?)", (stored, name, label, ts, expires_ms))
            append_audit(conn, ts, "token_add", by, f"user:{name}",
                         {"label": label, "token": stored[:TOKEN_ID_LENGTH], "expires_ms": expires_ms})
        return token

    def tokens(self, name: str | None = None) -> list[ApiToken]:
        """The API tokens (of one user, or all), newest first."""
        where, params = ("WHERE user = ?", (name,)) if name is not None else ("", ())
        with self._readers.read() as conn:
            rows = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM web_api_tokens {where} ORDER BY created_ms DESC",
                                params).fetchall()
        return [ApiToken(str(r[0])[:TOKEN_ID_LENGTH], str(r[1]), str(r[2]), int(r[3]), r[4], r[5]) for r in rows]

    def revoke_token(self, token_id: str, *, by: str) -> ApiToken:
        """Revoke the token whose id (see :meth:`tokens`) is ``token_id`` (audited as ``token_revoke``).

        Raises:
            UserError: no token, or more than one, has this id.
        """
        token_id = token_id.strip().lower()
        if len(token_id) < 6 or set(token_id) - set("0123456789abcdef"):
            raise UserError(f"token id {token_id!r}: give the id --list shows", "user_token_unknown", id=token_id[:20])
        ts = now_ms()
        with self._lock, write_tx(self._conn) as conn:
            rows = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM web_api_tokens WHERE substr(token_hash, 1, ?) = ?",
                                (len(token_id), token_id)).fetchall()
            if len(rows) != 1:
                raise UserError(f"no single API token has the id {token_id!r}", "user_token_unknown", id=token_id)
            row = rows[0]
            conn.execute("DELETE FROM web_api_tokens WHERE token_hash = ?", (row[0],))
            append_audit(conn, ts, "token_revoke", by, f"user:{row[1]}",
                         {"label": row[2], "token": str(row[0])[:TOKEN_ID_LENGTH]})
        return ApiToken(str(row[0])[:TOKEN_ID_LENGTH], str(row[1]), str(row[2]), int(row[3]), row[4], row[5])

    def token_user(self, token: str) -> User | None:
        """The enabled user an unexpired API token acts as, or None; its last use is recorded (at most once a
        minute)."""
        if not token.startswith("am_"):
            return None
        key = digest(token)
        with self._readers.read() as conn:
            row = conn.execute(
                f"SELECT t.expires_ms, t.last_used_ms, {', '.join('u.' + c for c in _USER_COLUMNS.split(', '))}"
                " FROM web_api_tokens t JOIN web_users u ON u.name = t.user WHERE t.token_hash = ?", (key,)).fetchone()
        ts = now_ms()
        if row is None or (row[0] is not None and int(row[0]) <= ts):
            return None
        user = _user(row[2:])
        if user.disabled:
            return None
        if row[1] is None or ts - int(row[1]) > SEEN_EVERY_MS:
            with self._lock:
                self._conn.execute("UPDATE web_api_tokens SET last_used_ms = ? WHERE token_hash = ?", (ts, key))
        return user


def one_time_admin(store: UserStore, name: str = "admin") -> str:
    """Create (or reset) an administrator with a new random password and return it, for the demo to print
    once. The password is never stored in clear or logged; the change is audited."""
    password = secrets.token_urlsafe(12)
    if store.get(name) is None:
        store.add(name, "admin", password, by="demo")
    else:
        store.set_password(name, password, by="demo")
        store.set_disabled(name, False, by="demo")
    return password
