"""The HTTP side of the InfluxDB target, on influxdb-client's HTTP stack (one connection pool, TLS, auth).

- :meth:`InfluxClient.write` sends line protocol with ms precision: through influxdb-client's write API to
  ``/api/v2/write`` (``api = "v2"``: InfluxDB 2.x, 3.x, 1.8+, VictoriaMetrics), or to the 1.x ``/write``
  endpoint (``api = "v1"``, InfluxDB before 1.8) through the same client's ``call_api``.
- :meth:`InfluxClient.query` runs InfluxQL on ``/query``, which 1.x, 2.x (through a DBRP mapping) and 3.x
  all answer.

Every failure is a :class:`RemoteError` saying what to do with the request: send it again later
(``retryable``: connection errors, timeouts, 429, 5xx), or split it to find the point the server refuses
(``bad_point``: a 400 or 422 whose body is the server's own JSON error naming a point problem, such as
``unable to parse``, ``partial write``, ``field type conflict``; ``too_large``: 413), or keep it and wait for
the operator (401, 403, 404, and any other 400: an HTML page from a proxy, a wrong port, HTTP sent to an
HTTPS port, a firewall's refusal, all of which refuse every request whatever it holds, so nothing is refused).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from archmon.forward_config import InfluxForwardConfig
from collector.forward.remote import RemoteError

__all__ = ["InfluxClient", "QuerySeries", "RemoteError"]

log = logging.getLogger(__name__)

def _finish(response: Any) -> None:
    """Read what is left of an answer taken without preloading and give its connection back.

    Unread (a 204 to ``/write``), the answer keeps its socket's file open; from a server that closes
    connections (HTTP/1.0, ``Connection: close``) the socket is then already closed but not its file, and
    only a garbage collection, in any order, ends both (reported as an unclosed socket).
    """
    try:
        response.read()
    except (urllib3.exceptions.HTTPError, OSError):
        pass  # the answer was already judged by its status; only the connection is lost
    finally:
        response.release_conn()
        response.close()


def _error(exc: ApiException) -> RemoteError:
    """The :class:`RemoteError` of an HTTP error answer."""
    reason, server_error = _reason(exc)
    return RemoteError(int(exc.status or 0), reason, server_error=server_error)


@dataclass(frozen=True, slots=True)
class QuerySeries:
    """One series of an InfluxQL answer: measurement, tags (with ``GROUP BY``), columns and rows."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]


def _reason(exc: ApiException) -> tuple[str, bool]:
    """The error's text in one line, and whether it was the server's JSON error (not an HTML page)."""
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    server_error = False
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and (parsed.get("error") or parsed.get("message")):
            body = str(parsed.get("error") or parsed.get("message"))
            server_error = True
    except ValueError:
        pass
    return " ".join((body or str(exc.reason or "")).split())[:1000], server_error


class InfluxClient:
    """Writes and InfluxQL queries to one InfluxDB (or compatible) server.

    Args:
        config: the ``[forward.influxdb]`` table.
        token: the API token (v2), or None.
        password: the 1.x password (with ``config.username``), or None.
        ca_file: CA certificate path (resolved against the config file's folder), or None.
    """

    def __init__(self, config: InfluxForwardConfig, *, token: str | None = None, password: str | None = None,
                 ca_file: str | None = None) -> None:
        self.config = config
        self._v1_auth: list[tuple[str, str]] = []
        if config.username and password is not None:
            self._v1_auth = [("u", config.username), ("p", password)]
            if token is None and config.api == "v2":
                token = f"{config.username}:{password}"  # what InfluxDB 1.8+ takes on its v2 API
        options: dict[str, Any] = {"retries": False}
        if ca_file:
            options["ssl_ca_cert"] = ca_file
        self._client = InfluxDBClient(url=config.url, token=token, org=config.org or None,
                                      timeout=int(config.timeout_s * 1000), **options)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def write(self, lines: Sequence[str]) -> None:
        """Send ``lines`` (ms timestamps) in one request.

        Raises:
            RemoteError: not accepted (see the module docstring for what each kind means).
        """
        body = "\n".join(lines).encode("utf-8")
        try:
            if self.config.api == "v2":
                # 1.8+, 3.x and VictoriaMetrics ignore the organisation; the client insists on one ("-")
                self._write_api.write(bucket=self.config.target_bucket, org=self.config.org or "-", record=body,
                                      write_precision=WritePrecision.MS)
            else:
                params = [("db", self.config.database), ("precision", "ms"), *self._v1_auth]
                if self.config.retention_policy:
                    params.append(("rp", self.config.retention_policy))
                _finish(self._client.api_client.call_api(
                    "/write", "POST", query_params=params, body=body, auth_settings=[],
                    header_params={"Content-Type": "text/plain; charset=utf-8"},
                    _return_http_data_only=True, _preload_content=False))
        except ApiException as exc:
            raise _error(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RemoteError(0, f"{type(exc).__name__}: {exc}") from None

    def query(self, influxql: str) -> list[QuerySeries]:
        """Run one InfluxQL statement on ``/query`` (``db`` = ``database``, timestamps as epoch ms).

        Raises:
            RemoteError: the server did not answer, refused the request, or reported a query error (status
                400 then, with the error text).
        """
        params = [("db", self.config.database), ("q", influxql), ("epoch", "ms"), *self._v1_auth]
        if self.config.retention_policy:
            params.append(("rp", self.config.retention_policy))
        try:
            response = self._client.api_client.call_api(
                "/query", "GET", query_params=params, auth_settings=[], _return_http_data_only=True,
                _preload_content=False)
            try:
                answer = json.loads(response.data)
            finally:
                _finish(response)
        except ApiException as exc:
            raise _error(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RemoteError(0, f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:
            raise RemoteError(502, f"not an InfluxQL answer: {exc}") from None
        out: list[QuerySeries] = []
        for result in answer.get("results", []):
            if result.get("error"):
                raise RemoteError(400, str(result["error"]))
            for series in result.get("series", []):
                out.append(QuerySeries(str(series.get("name", "")), dict(series.get("tags") or {}),
                                       list(series.get("columns", [])), list(series.get("values", []))))
        return out
