"""The ``[forward]`` configuration: where a site sends copies of its readings (``[forward.influxdb]``).

SQLite stays the site's durable record; a forward target gets every stored reading through the outbox
(``collector.forward``). Secrets (an InfluxDB token or a 1.x password) come from an environment variable or
a file, never from the config file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ForwardConfig", "InfluxForwardConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InfluxForwardConfig(_Model):
    """An InfluxDB (or compatible: VictoriaMetrics) server that gets a copy of every stored reading.

    Attributes:
        url: the server's base URL (``http://influx.example.org:8086``); HTTPS verifies the certificate.
        api: ``v2`` writes to ``/api/v2/write`` (InfluxDB 2.x, 3.x, 1.8+, VictoriaMetrics); ``v1`` to ``/write``
            (InfluxDB 1.x before 1.8). Reads always use InfluxQL on ``/query``.
        bucket: v2 bucket (InfluxDB 1.8+: ``database/retention_policy``); default ``database``.
        org: v2 organisation (InfluxDB 2.x; ignored by 1.8+, 3.x and VictoriaMetrics).
        database: the InfluxQL database (``db=``) for ``/query`` and v1 ``/write``; on 2.x a DBRP mapping
            must map it to the bucket (docs/operations.md).
        retention_policy: v1 ``rp=`` ("" : the database's default).
        token_env, token_file: the API token (2.x, 3.x; on 1.8+ ``username:password``).
        username, password_env, password_file: InfluxDB 1.x credentials (v1 ``/write`` and ``/query``).
        ca_file: CA certificate to verify an HTTPS server with (default: the system's).
        batch_size: lines sent per request at most.
        timeout_s: one request's bound (connect and answer); a blackholed link costs this per try.
        retry_min_s, retry_max_s: backoff after a failed request, doubling from min to max.
        outbox_max_rows, outbox_max_bytes: the outbox's bound; readings stored while it is full are not
            queued but remembered as a time range and queued again from the raw table once it has room
            (the local store keeps every reading regardless).
        warn_rows, warn_bytes, warn_age_s: the ``forwarding`` alert's thresholds (long before the bound);
            default a fifth of the bound, and one hour for the oldest queued reading.
    """

    enabled: bool = True
    url: str
    api: Literal["v1", "v2"] = "v2"
    bucket: str = ""
    org: str = ""
    database: str = "archmon"
    retention_policy: str = ""
    token_env: str | None = None
    token_file: Path | None = None
    username: str = ""
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    retry_min_s: float = Field(default=1.0, gt=0, le=600)
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)
    outbox_max_rows: int = Field(default=5_000_000, ge=100)
    outbox_max_bytes: int = Field(default=1024 * 1024 * 1024, ge=10_000)
    warn_rows: int | None = Field(default=None, ge=1)
    warn_bytes: int | None = Field(default=None, ge=1)
    warn_age_s: float = Field(default=3600.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, sep, rest = value.strip().rstrip("/").partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest or "@" in rest:
            raise ValueError(f"expected http://HOST:PORT or https://HOST:PORT without credentials, got {value!r}")
        return f"{scheme.lower()}://{rest}"

    @model_validator(mode="after")
    def _consistent(self) -> InfluxForwardConfig:
        if self.token_env and self.token_file:
            raise ValueError("give token_env or token_file, not both")
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a password needs a username")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be at least retry_min_s")
        if self.warn_rows is not None and self.warn_rows >= self.outbox_max_rows:
            raise ValueError("warn_rows must be below outbox_max_rows (the alert comes long before the bound)")
        if self.warn_bytes is not None and self.warn_bytes >= self.outbox_max_bytes:
            raise ValueError("warn_bytes must be below outbox_max_bytes")
        return self

    @property
    def target_bucket(self) -> str:
        """The v2 bucket written to (``bucket``, else ``database`` with its retention policy)."""
        if self.bucket:
            return self.bucket
        return f"{self.database}/{self.retention_policy}" if self.retention_policy else self.database

    @property
    def warn_rows_at(self) -> int:
        """Queued rows from which the backlog alert is raised."""
        return self.warn_rows if self.warn_rows is not None else max(1, self.outbox_max_rows // 5)

    @property
    def warn_bytes_at(self) -> int:
        """Queued bytes from which the backlog alert is raised."""
        return self.warn_bytes if self.warn_bytes is not None else max(1, self.outbox_max_bytes // 5)


class ForwardConfig(_Model):
    """Forward targets (``[forward.influxdb]``); none by default."""

    influxdb: InfluxForwardConfig | None = None

    @property
    def active(self) -> InfluxForwardConfig | None:
        """The InfluxDB target, when configured and enabled."""
        return self.influxdb if self.influxdb is not None and self.influxdb.enabled else None
