"""Stores: the embedded SQLite store and the types its read API returns."""

from collector.store._types import Bucket, LatestValue, SchemaError, StoredQuarantine, UnassignedDevice
from collector.store.sqlite import SqliteStore

__all__ = ["Bucket", "LatestValue", "SchemaError", "SqliteStore", "StoredQuarantine", "UnassignedDevice"]
