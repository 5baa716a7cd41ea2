"""The dashboard's ASGI app: routes, middleware (login everywhere, CSRF, security headers) and lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from alerts.access import AccessRegister, attach_register
from alerts.rules.unregistered_entry import UnregisteredEntryRule
from archmon.config import Config
from archmon.hub import EventHub
from archmon.sqlite import ReaderPool
from collector.store import SqliteStore
from dashboards.web import api
from dashboards.web.context import Reloader, WebContext
from dashboards.web.live import LiveRooms, events_endpoint
from dashboards.web.pages import admin, alerts, auth, city, reports, rooms, sensors
from dashboards.web.ratelimit import LoginLimiter
from dashboards.web.security import AuthMiddleware, SecurityHeaders
from dashboards.web.users import UserStore

__all__ = ["STATIC", "build_app", "routes"]

STATIC = Path(__file__).resolve().parent / "static"


def routes() -> list[Route | Mount]:
    """Every route of the app (the security tests enumerate them)."""
    return [
        Route("/healthz", auth.healthz, methods=["GET"]),
        Route("/login", auth.login_form, methods=["GET"]),
        Route("/login", auth.login_submit, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/account/language", auth.language, methods=["POST"]),
        Route("/", rooms.overview, methods=["GET"]),
        Route("/rooms/{room}", rooms.room_page, methods=["GET"]),
        Route("/city", city.city_page, methods=["GET"]),
        Route("/alerts", alerts.alerts_page, methods=["GET"]),
        Route("/alerts/{alert_id:int}", alerts.alert_page, methods=["GET"]),
        Route("/alerts/{alert_id:int}/ack", alerts.acknowledge, methods=["POST"]),
        Route("/sensors", sensors.sensors_page, methods=["GET"]),
        Route("/sensors/adopt", sensors.adopt, methods=["POST"]),
        Route("/access", admin.access_page, methods=["GET"]),
        Route("/access/open", admin.access_open, methods=["POST"]),
        Route("/access/{session_id:int}/close", admin.access_close, methods=["POST"]),
        Route("/reports", reports.reports_page, methods=["GET"]),
        Route("/reports/{period}/{name}", reports.report_download, methods=["GET"]),
        Route("/users", admin.users_page, methods=["GET"]),
        Route("/users", admin.user_add, methods=["POST"]),
        Route("/users/{name}/{action}", admin.user_action, methods=["POST"]),
        Route("/events", events_endpoint, methods=["GET"]),
        Route("/api/rooms", api.api_rooms, methods=["GET"]),
        Route("/api/latest", api.api_latest, methods=["GET"]),
        Route("/api/rooms/{room}/series", api.api_series, methods=["GET"]),
        Route("/api/city", city.api_city, methods=["GET"]),
        Route("/api/alerts", api.api_alerts, methods=["GET"]),
        Route("/api/alerts/{alert_id:int}/ack", api.api_ack, methods=["POST"]),
        Route("/api/access", api.api_access, methods=["GET"]),
        Route("/api/access", api.api_access_open, methods=["POST"]),
        Route("/api/access/{session_id:int}/close", api.api_access_close, methods=["POST"]),
        Route("/api/openapi.json", api.openapi, methods=["GET"], include_in_schema=False),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def build_app(
    config: Config,
    *,
    hub: EventHub | None,
    db_path: Path,
    alerts: Any = None,
    reload: Reloader | None = None,
    tls: bool | None = None,
    limiter: LoginLimiter | None = None,
    city: Any = None,
    hasher: PasswordHasher | None = None,
) -> Starlette:
    """The dashboard for a site.

    Args:
        config: the site's validated configuration (its ``path`` is the file adoption writes to).
        hub: the service's event hub (None: pages work, live updates never come).
        db_path: the shared SQLite file (must exist: the service creates it first).
        alerts: the running ``AlertService``; acknowledgements go through it so the engine sees them
            (None: written through the alert store, as ``archmon alerts ack`` does). If its engine's
            unregistered-entry rule has no access register yet, it is given one (reloads carry it over).
        reload: called with the new configuration after an adoption changed the config file.
        tls: cookies are ``Secure`` and HSTS is sent (default: ``config.http`` has a certificate).
        limiter: login rate limits (default: 5 failures per account, 20 per address, in 15 minutes).
        city: the service's city parts (``archmon.app.city.CityParts``): a central archmon serves ``/city``.
        hasher: the argon2 parameters of the user store (default: ``UserStore``'s; tests pass cheaper ones).

    Returns:
        A Starlette app; ``app.state.ctx`` is its :class:`WebContext`.
    """
    secure = bool(config.http.tls_cert) if tls is None else tls
    ctx = WebContext(
        config=config, db_path=Path(db_path), hub=hub,
        store=SqliteStore(Path(db_path), tz=config.site.tz, readonly=True),
        readers=ReaderPool(db_path), users=UserStore(db_path, hasher=hasher), access=AccessRegister(db_path, hub=hub),
        alerts=alerts, reload=reload, limiter=limiter or LoginLimiter(), secure_cookies=secure, city=city,
    )
    engine = getattr(alerts, "engine", None)
    if any(isinstance(rule, UnregisteredEntryRule) and rule.sessions is None for rule in getattr(engine, "rules", [])):
        attach_register(engine, db_path)  # by path: its lookups outlive this app

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        live = LiveRooms(ctx)
        app.state.live = live
        live.start()
        try:
            yield
        finally:
            await live.stop()
            for notice in ctx.limiter.pending_notices():  # refused logins not audited yet
                kind, _, who = notice.key.partition(":")
                ctx.users.audit("login_blocked", "?", f"user:{who}" if kind == "account" else notice.key,
                                {"limit": notice.key, "refused": notice.refused})

    app = Starlette(routes=routes(), lifespan=lifespan, middleware=[
        Middleware(SecurityHeaders, tls=secure),
        Middleware(AuthMiddleware, ctx=ctx),
    ])
    app.state.ctx = ctx
    return app
