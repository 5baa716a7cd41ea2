"""Stores: the embedded SQLite store and the types its read API returns."""

from collector.store._summary import BIN_SCALE, BINNED_QUANTITIES, MINUTE_MS, SLOT_MS, SLOTS_PER_HOUR, value_bin
from collector.store._summary_read import HourBin, SeriesRef, SummaryHour, SummaryReader
from collector.store._types import Bucket, LatestValue, RoomAssignment, SchemaError, StoredQuarantine, UnassignedDevice
from collector.store._values import decode_value, value_sql
from collector.store.sqlite import SqliteStore

__all__ = [
    "BINNED_QUANTITIES",
    "BIN_SCALE",
    "MINUTE_MS",
    "SLOTS_PER_HOUR",
    "SLOT_MS",
    "Bucket",
    "HourBin",
    "LatestValue",
    "RoomAssignment",
    "SchemaError",
    "SeriesRef",
    "SqliteStore",
    "StoredQuarantine",
    "SummaryHour",
    "SummaryReader",
    "UnassignedDevice",
    "decode_value",
    "value_bin",
    "value_sql",
]
