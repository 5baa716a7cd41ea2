"""``[storage]`` and ``[service]``: where readings are stored and how ``archmon run`` behaves as a service (parts of
:class:`archmon.config.Config`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from archmon.partition import Partition, parse_partition

__all__ = ["MIN_RAW_RETENTION_DAYS", "ServiceConfig", "StorageConfig"]

MIN_RAW_RETENTION_DAYS = 8


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Model):
    """Where and how readings are stored."""

    sqlite_path: Path = Path("archmon.db")
    raw_retention_days: int = Field(default=0, ge=0, description="0 keeps raw readings forever")
    quarantine_retention_days: int = Field(default=90, ge=0)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    flush_interval_ms: int = Field(default=200, ge=1, le=60_000)
    quarantine_payload_max_bytes: int = Field(
        default=65_536, ge=64, le=16 * 1024 * 1024,
        description="payload bytes kept per quarantined message (its full size and SHA-256 are kept too)")
    quarantine_per_source_per_minute: int = Field(
        default=60, ge=1, le=100_000,
        description="quarantine records one source keeps per minute; more are counted quarantine_suppressed")

    @field_validator("raw_retention_days")
    @classmethod
    def _retention_beyond_redelivery(cls, value: int) -> int:
        # A reading may arrive up to 7 days late (device time, broker backlog); deleting raw data sooner
        # would let a late duplicate be stored again and counted twice in the rollups.
        if 0 < value < MIN_RAW_RETENTION_DAYS:
            raise ValueError(f"must be 0 (keep forever) or at least {MIN_RAW_RETENTION_DAYS} days")
        return value


class ServiceConfig(_Model):
    """How ``archmon run`` behaves as a service.

    Attributes:
        stop_timeout_s: on SIGTERM/SIGINT, everything (final flush, acknowledgements, alert state) is
            finished or given up within this bound; a systemd unit's ``TimeoutStopSec`` should be a little
            above it (see ``docs/archmon.service``).
        partition: ``"K/N"``: this is instance K of N sharing the site's sensors (``archmon.partition``).
        store_only: store and forward readings, judge none (no alert rules run, not even smoke and leak);
            required for MQTT v5 shared subscriptions (an MQTT source's ``share_group``).
    """

    stop_timeout_s: float = Field(default=30.0, ge=1, le=600)
    partition: str = "1/1"
    store_only: bool = False

    @field_validator("partition")
    @classmethod
    def _partition(cls, value: str) -> str:
        return parse_partition(value).label

    @property
    def instance(self) -> Partition:
        """This instance's share of the site (1/1: all of it)."""
        return parse_partition(self.partition)
