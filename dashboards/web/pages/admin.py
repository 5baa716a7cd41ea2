"""The access register page (open/close sessions, operators) and the users page (admins)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from alerts.access import AccessError
from dashboards.web import queries
from dashboards.web.i18n import Translator
from dashboards.web.pages.common import ctx_of, error_redirect, language_of, page, query_error, redirect
from dashboards.web.security import current_user, requires
from dashboards.web.users import ROLES, UserError

__all__ = ["access_close", "access_open", "access_page", "user_action", "user_add", "users_page"]

ACCESS_AUDIT_KINDS = ("access_open", "access_close")
ACCESS_DONE = ("open", "close")
USER_DONE = ("add", "disable", "enable", "password", "role")


def _done(request: Request, known: tuple[str, ...]) -> str:
    """What the redirect after a change says was done, if it is one of ``known`` (never a catalogue key
    made of whatever a link carries)."""
    kind = request.query_params.get("done", "").split("-", 1)[0]
    return kind if kind in known else ""


async def access_page(request: Request) -> Response:
    """``GET /access?room=``: open sessions, the form to open one, history and the register's audit entries."""
    ctx = ctx_of(request)
    room = request.query_params.get("room") or None
    if room is not None and ctx.room(room) is None:
        room = None

    def read() -> dict[str, Any]:
        with ctx.readers.read() as conn:
            audit = queries.audit_entries(conn, kinds=ACCESS_AUDIT_KINDS, limit=30)
        return {"open_sessions": ctx.access.sessions(open_only=True),
                "history": ctx.access.sessions(room=room, limit=200), "audit": audit}

    data = await run_in_threadpool(read)
    return page(request, "access.html", rooms=ctx.config.rooms, room=room,
                error=query_error(request, Translator(language_of(request))), done=_done(request, ACCESS_DONE),
                **data)


@requires("operator")
async def access_open(request: Request) -> Response:
    """``POST /access/open`` (form: room, people (one per line or comma-separated), purpose, approval); the
    register publishes the session on the hub (live cards)."""
    ctx = ctx_of(request)
    form = await request.form()
    room = str(form.get("room", ""))
    if ctx.room(room) is None:
        return error_redirect("/access", "access_unknown_room", {"room": room})
    people = str(form.get("people", "")).splitlines()
    try:
        session = await run_in_threadpool(ctx.access.open_session, room, people, str(form.get("purpose", "")),
                                          str(form.get("approval", "")), current_user(request).name)
    except AccessError as exc:
        return error_redirect("/access", exc)
    return redirect(f"/access?done=open-{session.id}")


@requires("operator")
async def access_close(request: Request) -> Response:
    """``POST /access/{session_id}/close`` (form: note)."""
    ctx = ctx_of(request)
    form = await request.form()
    session_id = request.path_params["session_id"]
    try:
        session = await run_in_threadpool(ctx.access.close_session, session_id, current_user(request).name,
                                          note=str(form.get("note", "")))
    except KeyError:
        return error_redirect("/access", "access_unknown_session", {"id": session_id})
    except AccessError as exc:
        return error_redirect("/access", exc)
    return redirect(f"/access?done=close-{session.id}")


@requires("admin")
async def users_page(request: Request) -> Response:
    """``GET /users``."""
    ctx = ctx_of(request)
    users = await run_in_threadpool(ctx.users.users)
    return page(request, "users.html", users=users, roles=ROLES,
                error=query_error(request, Translator(language_of(request))), done=_done(request, USER_DONE))


@requires("admin")
async def user_add(request: Request) -> Response:
    """``POST /users`` (form: name, role, password, password2, language)."""
    ctx = ctx_of(request)
    form = await request.form()
    password = str(form.get("password", ""))
    if password != str(form.get("password2", "")):
        return error_redirect("/users", "user_passwords_differ")
    language = str(form.get("language", "")) or None
    try:
        await run_in_threadpool(lambda: ctx.users.add(str(form.get("name", "")), str(form.get("role", "")), password,
                                                      by=current_user(request).name, language=language))
    except UserError as exc:
        return error_redirect("/users", exc)
    return redirect("/users?done=add")


@requires("admin")
async def user_action(request: Request) -> Response:
    """``POST /users/{name}/{action}``: ``disable``, ``enable``, ``password`` (form: password, password2) or
    ``role`` (form: role)."""
    ctx = ctx_of(request)
    form = await request.form()
    name, action = request.path_params["name"], request.path_params["action"]
    by = current_user(request).name
    try:
        if action in ("disable", "enable"):
            await run_in_threadpool(lambda: ctx.users.set_disabled(name, action == "disable", by=by))
        elif action == "password":
            password = str(form.get("password", ""))
            if password != str(form.get("password2", "")):
                raise UserError("the two passwords differ", "user_passwords_differ")
            await run_in_threadpool(lambda: ctx.users.set_password(name, password, by=by))
        elif action == "role":
            await run_in_threadpool(lambda: ctx.users.set_role(name, str(form.get("role", "")), by=by))
        else:
            raise UserError(f"unknown action {action!r}", "user_unknown_action", action=action[:40])
    except UserError as exc:
        return error_redirect("/users", exc)
    return redirect(f"/users?done={action}")
