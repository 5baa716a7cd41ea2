"""Login everywhere, CSRF on every state change, security headers: pure ASGI middleware.

- :class:`AuthMiddleware` resolves the caller (session cookie or ``Authorization: Bearer`` API token)
  for **every** path; only :data:`PUBLIC_PATHS` and static files are served without one. A page answers
  a redirect to ``/login``, anything under ``/api`` or ``/events`` a 401. A new route is therefore
  protected by default; ``tests/dashboards/test_security.py`` enumerates the routes to show it.
- Every request that is not GET/HEAD/OPTIONS from a browser session must carry the session's CSRF token
  (form field ``csrf`` or header ``X-CSRF-Token``) and, when the browser sends ``Origin``, come from this
  origin: the request's ``Host``, or ``[http] public_url`` (behind a proxy that rewrites ``Host``). The
  login form uses a double-submit cookie. Scripts with an API token need no CSRF token (a token is not an
  ambient credential).
- :class:`SecurityHeaders` adds the CSP (no inline script, ``frame-ancestors 'none'``) and friends.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboards.web.users import Role, User

__all__ = ["PUBLIC_PATHS", "AuthMiddleware", "Caller", "SecurityHeaders", "current_user", "refusal", "requires",
           "session_cookie_name"]

PUBLIC_PATHS = frozenset({"/healthz", "/login"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_CSRF_COOKIE = "archmon_login_csrf"
MAX_FORM_BYTES = 1_000_000

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def session_cookie_name(secure: bool) -> str:
    """``__Host-`` prefixed over TLS (browsers then insist on Secure, path / and no domain)."""
    return "__Host-archmon_session" if secure else "archmon_session"


class SecurityHeaders:
    """Adds security headers to every HTTP response (HSTS too when served over TLS)."""

    def __init__(self, app: ASGIApp, *, tls: bool = False) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                if not any(name == b"cache-control" for name in present):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/api" or path.startswith("/events")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request.

    Attributes:
        user: the logged-in user (None: anonymous).
        csrf: the browser session's CSRF token ("" for tokens and anonymous callers).
        via: ``session`` (cookie), ``token`` (``Authorization: Bearer``) or "" (anonymous).
    """

    user: User | None = None
    csrf: str = ""
    via: Literal["session", "token", ""] = ""


def refusal(request: Request, status: int, code: str, **params: Any) -> Response:
    """A refusal in the caller's language: JSON ``{"error", "code"}`` for the API and live streams, a small
    page (or plain text before login) otherwise."""
    from dashboards.web.i18n import Translator  # late: pages import this module
    from dashboards.web.pages.common import html_error, language_of

    text = Translator(language_of(request)).error(code, params)
    if _is_api(request.url.path) or "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": text, "code": code}, status_code=status)
    return html_error(request, status, text)


class AuthMiddleware:
    """Resolves the caller for every request and refuses what it may not do (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, ctx: Any) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        state = scope.setdefault("state", {})
        caller = await caller_of(self.ctx, request)
        state.update(user=caller.user, csrf=caller.csrf, auth=caller.via)
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if caller.user is None and not public:
            await self._login_required(request)(scope, receive, send)
            return
        if request.method not in SAFE_METHODS and caller.via != "token":
            body, receive = await _buffer(receive)
            if body is None:
                await refusal(request, 413, "too_large")(scope, receive, send)
                return
            refused = self._csrf_refusal(request, body, caller.csrf)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _login_required(request: Request) -> Response:
        if _is_api(request.url.path) or "application/json" in request.headers.get("accept", ""):
            response = refusal(request, 401, "login_required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="archmon"'
            return response
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def _same_origin(self, request: Request, origin: str) -> bool:
        """``Origin`` names this dashboard: the ``Host`` the browser sent, or the configured public URL."""
        origin = origin.strip().rstrip("/").lower()
        public = self.ctx.config.http.public_url
        if public is not None and origin == public:
            return True
        return origin.split("://", 1)[-1] == request.headers.get("host", "").lower()

    def _csrf_refusal(self, request: Request, body: bytes, expected: str) -> Response | None:
        origin = request.headers.get("origin")
        if origin is not None and not self._same_origin(request, origin):
            return refusal(request, 403, "cross_origin")
        given = request.headers.get("x-csrf-token", "")
        if not given and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            given = (fields.get("csrf") or [""])[0]
        if not expected and request.url.path == "/login":
            expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return refusal(request, 403, "csrf")
        return None


async def caller_of(ctx: Any, request: Request) -> Caller:
    """Resolve the caller of a request (session cookie, else bearer token); live streams ask again while
    they run, so a logout, a disabled account or a changed role ends them."""
    from starlette.concurrency import run_in_threadpool

    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = await run_in_threadpool(ctx.users.token_user, header[7:].strip())
        return Caller(user, "", "token") if user else Caller()
    cookie = request.cookies.get(session_cookie_name(ctx.secure_cookies), "")
    if cookie:
        session = await run_in_threadpool(ctx.users.session, cookie)
        if session is not None:
            return Caller(session.user, session.csrf, "session")
    return Caller()


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole request body (bounded) and hand the app a receive that replays it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def current_user(request: Request) -> User:
    """The logged-in user of a protected request (the middleware guarantees one)."""
    user = request.state.user
    assert user is not None
    return user


Endpoint = Callable[[Request], Awaitable[Response]]


def requires(role: Role) -> Callable[[Endpoint], Endpoint]:
    """Refuse (403) callers below ``role``; the middleware has refused anonymous callers already."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user = request.state.user
            if user is None or not user.can(role):
                return refusal(request, 403, f"forbidden_{role}")
            return await endpoint(request)

        guarded.required_role = role  # type: ignore[attr-defined]
        return guarded

    return decorate
