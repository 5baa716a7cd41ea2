"""Dashboard accounts: roles, the user, session and token records, and the checks on names and passwords.

Kept apart from the store (:mod:`dashboards.web.users`), which re-exports everything here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "ApiToken",
    "NewSession",
    "Role",
    "User",
    "UserError",
    "WebSession",
    "check_name",
    "check_password",
    "check_role",
    "digest",
    "role_at_least",
    "unknown_user",
]

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
MIN_PASSWORD_LENGTH = 10
SEEN_EVERY_MS = 60_000  # a session's last-seen (a token's last-used) time is written at most once a minute
TOKEN_ID_LENGTH = 12
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")

class UserError(ValueError):
    """A user change that cannot be made (unknown user, weak password, bad role...).

    Attributes:
        code: what went wrong, for the dashboard's catalogues (``error.<code>``); the message is English.
        params: the values the message names.
    """

    def __init__(self, message: str, code: str = "user", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


def role_at_least(role: str, needed: Role) -> bool:
    """Whether ``role`` includes the rights of ``needed`` (viewer < operator < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class User:
    """A dashboard account (never carries the password hash)."""

    name: str
    role: Role
    language: str | None
    disabled: bool
    created_ms: int

    def can(self, needed: Role) -> bool:
        """Whether this user has at least the ``needed`` role."""
        return not self.disabled and role_at_least(self.role, needed)


@dataclass(frozen=True, slots=True)
class WebSession:
    """A logged-in browser: the user and the session's CSRF token."""

    user: User
    csrf: str
    expires_ms: int


class NewSession(NamedTuple):
    """A session just started: the cookie's secret (only its hash is stored) and its CSRF token."""

    cookie: str
    csrf: str


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as listed (never the secret itself).

    Attributes:
        id: the first digits of the token's stored hash: names it for ``--revoke``, reveals nothing.
        user: who it acts as; label: what it is for.
        created_ms, last_used_ms, expires_ms: when it was made, last used (None: never), expires (None: never).
    """

    id: str
    user: str
    label: str
    created_ms: int
    last_used_ms: int | None
    expires_ms: int | None

    def expired(self, now: int) -> bool:
        """Whether the token no longer lets anyone in."""
        return self.expires_ms is not None and self.expires_ms <= now


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    name = name.strip()
    # "." and ".." would be path segments in /users/{name}/...: browsers resolve them away
    if not name or len(name) > 64 or set(name) - NAME_CHARS or not name.strip("."):
        raise UserError(f"user name {name!r}: use 1–64 letters, digits or _ . - @ (not only dots)",
                        "user_bad_name", name=name[:64])
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters", "user_password_short",
                        n=MIN_PASSWORD_LENGTH)
    if len(password) > 1024:
        raise UserError("password too long (over 1024 characters)", "user_password_long", n=1024)
    return password


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", "user_bad_role", role=role[:64])
    return role  # type: ignore[return-value]


def unknown_user(name: str) -> UserError:
    return UserError(f"unknown user {name!r}", "user_unknown", name=name[:64])


