"""Login, logout, language choice and the health check."""

from __future__ import annotations

import math
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dashboards.web.i18n import LANGUAGES, Translator
from dashboards.web.pages.common import LANG_COOKIE, ctx_of, language_of, page, redirect
from dashboards.web.security import LOGIN_CSRF_COOKIE, current_user, session_cookie_name

__all__ = ["healthz", "language", "login_form", "login_submit", "logout"]


def _safe_next(target: str | None) -> str:
    """Only local paths (never ``//host`` or a scheme): no open redirect after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def healthz(request: Request) -> Response:
    """``GET /healthz``: liveness, without login (no site data)."""
    return JSONResponse({"ok": True})


def _login_page(request: Request, *, error: str = "", name: str = "", status: int = 200,
                next_url: str = "/", headers: dict[str, str] | None = None) -> Response:
    ctx = ctx_of(request)
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = page(request, "login.html", status_code=status, error=error, name=name, next=next_url,
                    login_csrf=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=ctx.secure_cookies,
                        path="/login")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


async def login_form(request: Request) -> Response:
    """``GET /login`` (``?lang=zh|en`` picks the language before login)."""
    lang = request.query_params.get("lang")
    next_url = _safe_next(request.query_params.get("next"))
    if request.state.user is not None:
        return redirect(next_url)
    if lang in LANGUAGES:
        request.state.language = lang  # this page already in the chosen language
    response = _login_page(request, next_url=next_url)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="strict", secure=ctx_of(request).secure_cookies)
    return response


async def login_submit(request: Request) -> Response:
    """``POST /login``: rate-limited per account and address (the attempt is reserved before the password is
    checked, so concurrent requests cannot pass the limit); audited: every login and failed login, the first
    refused attempt per limit and window with the count of refusals it stands for."""
    ctx = ctx_of(request)
    form = await request.form()
    name = str(form.get("name", "")).strip()[:64]
    password = str(form.get("password", ""))
    next_url = _safe_next(str(form.get("next", "/")))
    address = _address(request)
    t = Translator(language_of(request))
    attempt = ctx.limiter.attempt(name, address)  # counted before the password is checked
    if not attempt.allowed:
        if attempt.notice is not None:  # the first refusal of this limit in a window, with the count
            await run_in_threadpool(ctx.users.audit, "login_blocked", name or "?", f"user:{name}",
                                    {"address": address, "limit": attempt.notice.key,
                                     "refused": attempt.notice.refused})
        wait = attempt.retry_after
        return _login_page(request, error=t("login.blocked", minutes=math.ceil(wait / 60)), name=name, status=429,
                           next_url=next_url, headers={"Retry-After": str(math.ceil(wait))})
    user = await run_in_threadpool(ctx.users.verify, name, password)
    if user is None:
        await run_in_threadpool(ctx.users.audit, "login_failed", name or "?", f"user:{name}", {"address": address})
        return _login_page(request, error=t("login.failed"), name=name, status=401, next_url=next_url)
    ctx.limiter.succeeded(attempt)
    started = await run_in_threadpool(ctx.users.start_session, user, address=address)
    response = redirect(next_url)
    response.set_cookie(session_cookie_name(ctx.secure_cookies), started.cookie, httponly=True, samesite="strict",
                        secure=ctx.secure_cookies, path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def logout(request: Request) -> Response:
    """``POST /logout``."""
    ctx = ctx_of(request)
    cookie = session_cookie_name(ctx.secure_cookies)
    await run_in_threadpool(ctx.users.end_session, request.cookies.get(cookie, ""), actor=current_user(request).name)
    response = redirect("/login")
    response.delete_cookie(cookie, path="/")
    return response


async def language(request: Request) -> Response:
    """``POST /account/language``: the user's language, remembered with their account."""
    ctx = ctx_of(request)
    form = await request.form()
    lang = str(form.get("language", ""))
    user = current_user(request)
    if lang in LANGUAGES:
        await run_in_threadpool(ctx.users.set_language, user.name, lang, by=user.name)
    response = redirect(_safe_next(str(form.get("next", "/"))))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="strict", secure=ctx.secure_cookies)
    return response
