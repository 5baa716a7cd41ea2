"""The access register page (open/close sessions, operators) and the users page (admins)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from alerts.access import AccessError
from dashboards.web import queries
from dashboards.web.pages.common import ctx_of, page, redirect
from dashboards.web.security import current_user, requires
from dashboards.web.users import ROLES, UserError

__all__ = ["access_close", "access_open", "access_page", "user_action", "user_add", "users_page"]

ACCESS_AUDIT_KINDS = ("access_open", "access_close")


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
    return page(request, "access.html", rooms=ctx.config.rooms, room=room, error=request.query_params.get(
        "error", "")[:300], done=request.query_params.get("done", ""), **data)


@requires("operator")
async def access_open(request: Request) -> Response:
    """``POST /access/open`` (form: room, people (one per line or comma-separated), purpose, approval)."""
    ctx = ctx_of(request)
    form = await request.form()
    room = str(form.get("room", ""))
    if ctx.room(room) is None:
        return redirect(f"/access?error={quote(f'unknown room {room!r}')}")
    people = str(form.get("people", "")).splitlines()
    try:
        session = await run_in_threadpool(ctx.access.open_session, room, people, str(form.get("purpose", "")),
                                          str(form.get("approval", "")), current_user(request).name)
    except AccessError as exc:
        return redirect(f"/access?error={quote(str(exc))}")
    _changed(request, room)
    return redirect(f"/access?done=open-{session.id}")


@requires("operator")
async def access_close(request: Request) -> Response:
    """``POST /access/{session_id}/close`` (form: note)."""
    ctx = ctx_of(request)
    form = await request.form()
    try:
        session = await run_in_threadpool(ctx.access.close_session, request.path_params["session_id"],
                                          current_user(request).name, note=str(form.get("note", "")))
    except (AccessError, KeyError) as exc:
        return redirect(f"/access?error={quote(str(exc))}")
    _changed(request, session.room)
    return redirect(f"/access?done=close-{session.id}")


def _changed(request: Request, room: str) -> None:
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish({room})


@requires("admin")
async def users_page(request: Request) -> Response:
    """``GET /users``."""
    ctx = ctx_of(request)
    users = await run_in_threadpool(ctx.users.users)
    return page(request, "users.html", users=users, roles=ROLES, error=request.query_params.get("error", "")[:300],
                done=request.query_params.get("done", ""))


@requires("admin")
async def user_add(request: Request) -> Response:
    """``POST /users`` (form: name, role, password, password2, language)."""
    ctx = ctx_of(request)
    form = await request.form()
    password = str(form.get("password", ""))
    if password != str(form.get("password2", "")):
        return redirect(f"/users?error={quote('the two passwords differ')}")
    language = str(form.get("language", "")) or None
    try:
        await run_in_threadpool(lambda: ctx.users.add(str(form.get("name", "")), str(form.get("role", "")), password,
                                                      by=current_user(request).name, language=language))
    except UserError as exc:
        return redirect(f"/users?error={quote(str(exc))}")
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
                raise UserError("the two passwords differ")
            await run_in_threadpool(lambda: ctx.users.set_password(name, password, by=by))
        elif action == "role":
            await run_in_threadpool(lambda: ctx.users.set_role(name, str(form.get("role", "")), by=by))
        else:
            raise UserError(f"unknown action {action!r}")
    except UserError as exc:
        return redirect(f"/users?error={quote(str(exc))}")
    return redirect(f"/users?done={action}")
