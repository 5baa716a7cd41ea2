"""Forwarding readings to InfluxDB (or VictoriaMetrics) through an outbox in the site's SQLite file.

``outbox`` (the spool, written in the store's own transactions), ``lines`` (line protocol), ``influx`` (the
HTTP client: v2 write API, 1.x ``/write``, InfluxQL ``/query``), ``forwarder`` (the thread that drains the
outbox), ``reader`` (series and windows read back through InfluxQL), ``setup`` (from the configuration) and
``status`` (what ``archmon status`` shows).
"""

from collector.forward.forwarder import Forwarder, ForwardHealth
from collector.forward.influx import InfluxClient, QuerySeries, RemoteError
from collector.forward.outbox import Outbox, OutboxLimits, OutboxRow, OutboxTotals
from collector.forward.reader import InfluxReader, RemotePoint
from collector.forward.setup import forward_problems, make_client, outbox_limits

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
