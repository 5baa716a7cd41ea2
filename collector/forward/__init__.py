"""Forwarding readings to InfluxDB (or VictoriaMetrics) through an outbox in the site's SQLite file.

``outbox`` (the spool, written in the store's own transactions), ``lines`` (line protocol), ``influx`` (the
HTTP client: v2 write API, 1.x ``/write``, InfluxQL ``/query``), ``forwarder`` (the thread that drains the
outbox), ``reader`` (series and windows read back through InfluxQL), ``setup`` (from the configuration) and
``status`` (what ``archmon status`` shows).
"""

from typing import TYPE_CHECKING, Any

from collector.forward.forwarder import Forwarder, ForwardHealth
from collector.forward.outbox import Outbox, OutboxLimits, OutboxRow, OutboxTotals
from collector.forward.remote import RemoteError
from collector.forward.setup import forward_problems, make_client, outbox_limits

if TYPE_CHECKING:
    from collector.forward.influx import InfluxClient, QuerySeries
    from collector.forward.reader import InfluxReader, RemotePoint

__all__ = [
    "ForwardHealth",
    "Forwarder",
    "InfluxClient",
    "InfluxReader",
    "Outbox",
    "OutboxLimits",
    "OutboxRow",
    "OutboxTotals",
    "QuerySeries",
    "RemoteError",
    "RemotePoint",
    "forward_problems",
    "make_client",
    "outbox_limits",
]

_LAZY = {"InfluxClient": "collector.forward.influx", "QuerySeries": "collector.forward.influx",
         "InfluxReader": "collector.forward.reader", "RemotePoint": "collector.forward.reader"}
"""Names whose modules load influxdb-client: imported on first use, so a service without a target skips it."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
