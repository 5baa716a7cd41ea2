"""The reports page: the reports and registers ``archmon run`` made on its schedule (kept in the data
directory), each with its SHA-256 as the audit log recorded it, downloadable by any logged-in user.

A download names a file by its period folder and name, both checked against the listing (never joined into a
path from what the browser sent), and is served as an attachment.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from dashboards.reports.integrity import find_reports, sha256_of
from dashboards.reports.schedule import KeptReport, kept_reports, reports_dir
from dashboards.web.i18n import Translator
from dashboards.web.pages.common import ctx_of, html_error, language_of, page

__all__ = ["report_download", "report_rows", "reports_page"]

MAX_LISTED = 500
_PERIOD = re.compile(r"^\d{4}-(\d{2}|W\d{2}|Q[1-4])$")
_NAME = re.compile(r"^(report|register)-[0-9A-Za-z-]+\.(pdf|json|csv)$")
_TYPES = {"pdf": "application/pdf", "json": "application/json", "csv": "text/csv; charset=utf-8"}


def report_rows(request: Request) -> list[dict[str, Any]]:
    """One row per kept file, newest period first, with its audit record (blocking: hashes the files)."""
    ctx = ctx_of(request)
    kept = kept_reports(reports_dir(ctx.config))[:MAX_LISTED]
    recorded = {r.sha256: r for r in find_reports(ctx.db_path)} if kept else {}
    rows = []
    for item in kept:
        digest = sha256_of(item.path.read_bytes())
        rows.append({"kept": item, "sha256": digest, "record": recorded.get(digest),
                     "kind": "register" if item.name.startswith("register-") else "report",
                     "format": item.name.rsplit(".", 1)[-1]})
    return rows


async def reports_page(request: Request) -> Response:
    """``GET /reports``."""
    rows = await run_in_threadpool(report_rows, request)
    return page(request, "reports.html", rows=rows)


def _find(request: Request, period: str, name: str) -> KeptReport | None:
    if not _PERIOD.match(period) or not _NAME.match(name):
        return None
    return next((k for k in kept_reports(reports_dir(ctx_of(request).config))
                 if k.period == period and k.name == name), None)


async def report_download(request: Request) -> Response:
    """``GET /reports/{period}/{name}``: the file as an attachment (404 for anything not listed)."""
    period, name = request.path_params["period"], request.path_params["name"]
    found = await run_in_threadpool(_find, request, period, name)
    if found is None:
        return html_error(request, 404, Translator(language_of(request))("reports.not_found"))
    return FileResponse(found.path, media_type=_TYPES[found.name.rsplit(".", 1)[-1]], filename=found.name,
                        content_disposition_type="attachment")
