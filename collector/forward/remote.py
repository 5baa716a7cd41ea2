"""What a remote target's refusal means (:class:`RemoteError`), apart from the HTTP client in ``influx``.

The forwarder only catches these; keeping them here lets ``archmon run`` import the forwarder, and with it
the whole ``collector.forward`` package, without loading influxdb-client (about 30 MiB resident with urllib3
and reactivex) when no ``[forward.influxdb]`` target is configured.
"""

from __future__ import annotations

import re

__all__ = ["RemoteError"]

_BAD_POINT = frozenset({400, 422})
_RETRYABLE = frozenset({408, 429})
_POINT_PROBLEM = re.compile(
    r"unable to parse|partial write|field type conflict|beyond retention|parsing failed|bad timestamp|"
    r"invalid (?:field|tag|timestamp|line|number|boolean|measurement|point|value)|missing (?:field|tag|measurement)|"
    r"max-values-per-tag|max-series-per-database", re.IGNORECASE)
"""What InfluxDB 1.x, 2.x and 3.x say in the JSON error of a write that holds a point they cannot take."""


class RemoteError(Exception):
    """A request the remote side did not accept.

    Attributes:
        status: the HTTP status (0: no answer: connection refused, reset, timed out).
        reason: the server's message, or the connection error, in one line.
        retryable: sending the same request later may work (an outage).
        bad_point: the server's own error names a point it cannot take (split the request to find which).
        too_large: 413: the request is too large (split it; a single line refused so is no point problem).
    """

    def __init__(self, status: int, reason: str, *, server_error: bool = False) -> None:
        """``server_error``: the body was the server's JSON error (``error`` or ``message``), not a page."""
        super().__init__(f"HTTP {status}: {reason}" if status else reason)
        self.status = status
        self.reason = reason
        self.retryable = status == 0 or status >= 500 or status in _RETRYABLE
        self.bad_point = status in _BAD_POINT and server_error and _POINT_PROBLEM.search(reason) is not None
        self.too_large = status == 413
