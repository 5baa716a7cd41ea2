"""Stores: the embedded SQLite store and the types its read API returns."""

from collector.store._types import Bucket, LatestValue, RoomAssignment, SchemaError, StoredQuarantine, UnassignedDevice
from collector.store.sqlite import SqliteStore

__all__ = [
    "Bucket",
    "LatestValue",
    "RoomAssignment",
    "SchemaError",
    "SqliteStore",
    "StoredQuarantine",
    "UnassignedDevice",
]
