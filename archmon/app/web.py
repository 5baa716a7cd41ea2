"""The web dashboard of ``archmon run`` and ``archmon demo``: served beside the collector, never needed by it.

``--http HOST:PORT`` (or ``[http] host``/``port``, default ``127.0.0.1:8080``; ``--http off`` or
``[http] enabled = false``: none). An address that is taken or cannot be used is one error in the log and
the service goes on collecting; ``archmon status`` shows it from the gauges ``http.enabled``,
``http.serving`` and ``http.port``. An adoption in the dashboard (it wrote the file already) goes through
:meth:`Service.reload`, like SIGHUP; after every applied reload the dashboard works with the configuration
in force. The stop stops the dashboard first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from archmon.config import Config
from archmon.timeutil import now_ms
from collector.records import Batch

if TYPE_CHECKING:
    from archmon.app.service import Service

__all__ = ["HTTP_OFF", "Dashboard", "serve_dashboard"]

log = logging.getLogger("archmon.app")

HTTP_OFF = "off"


class Dashboard:
    """The running dashboard: its server and the app's stores, stopped together.

    Attributes:
        url: where it answers.
    """

    def __init__(self, server: Any, ctx: Any) -> None:
        self.server = server
        self.ctx = ctx
        self.url: str = server.url

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop serving (live streams end), then close the app's stores."""
        self.server.stop(timeout_s)
        self.ctx.close()


def serve_dashboard(service: Service, address: str | None = None) -> Dashboard | None:
    """Serve the dashboard of ``service`` on ``address`` (``HOST:PORT``; ``"off"``: none; None: ``[http]``).

    Returns:
        The dashboard (also ``service.dashboard``), or None when it is off or could not start (logged).

    Raises:
        ValueError: ``address`` is not ``HOST:PORT`` (nor ``off``).
    """
    config = service.config
    if address == HTTP_OFF or (address is None and not config.http.enabled):
        log.info("dashboard off (%s)", "--http off" if address else "[http] enabled = false")
        _gauges(service, enabled=0, serving=0, port=0)
        return None
    from dashboards.web import build_app, parse_address, serve

    host, port = parse_address(address) if address else (config.http.host, config.http.port)

    def adopted(_new: Config) -> None:
        """The dashboard wrote the file (an adoption): reload it like SIGHUP; a refusal undoes the adoption."""
        outcome = service.reload()
        if not outcome.applied:
            raise RuntimeError("; ".join(outcome.problems) or "the reload was not applied")

    try:
        app = build_app(config, hub=service.hub, db_path=service.db_path, alerts=service.alerts, reload=adopted,
                        city=service.city)
    except Exception:  # a bug or a file it cannot read: the dashboard's loss, never the collector's
        log.exception("dashboard NOT served: it could not be built; archmon goes on collecting without it")
        _gauges(service, enabled=1, serving=0, port=port)
        return None
    ctx = app.state.ctx
    try:
        server = serve(app, config, address=address)
    except (RuntimeError, OSError) as exc:
        ctx.close()
        log.error("dashboard NOT served: %s:%d cannot be used (%s; taken by another program?); archmon goes on "
                  "collecting without it (--http HOST:PORT or [http] port chooses another address)", host, port, exc)
        _gauges(service, enabled=1, serving=0, port=port)
        return None
    dashboard = Dashboard(server, ctx)
    service.dashboard = dashboard
    service.on_reload.append(lambda new: setattr(ctx, "config", new))
    _gauges(service, enabled=1, serving=1, port=server.bound_port)
    return dashboard


def _gauges(service: Service, *, enabled: int, serving: int, port: int) -> None:
    """What ``archmon status`` says about the dashboard (written with the next commit)."""
    now = now_ms()
    batch = Batch()
    batch.gauges.update({"http.enabled": (enabled, now), "http.serving": (serving, now), "http.port": (port, now)})
    try:
        service.writer.submit(batch, timeout=1)
    except Exception as exc:  # (RetryLater) a stalled store at start: status says nothing of the dashboard
        log.debug("dashboard gauges not persisted: %s", exc)
