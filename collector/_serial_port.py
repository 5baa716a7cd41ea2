"""What every source on a serial port shares: the port, its line settings and the hand-over bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from archmon.config import Config
from collector.handover import DEFAULT_MAX_BUFFERED_BYTES
from collector.source import PlacedSensor, SourceConfig
from collector.spool import DEFAULT_SPOOL_MAX_BYTES, spool_dir, spool_problems

__all__ = ["DEFAULT_MAX_BUFFERED", "DEFAULT_MAX_BUFFERED_BYTES", "DEFAULT_SPOOL_MAX_BYTES", "SerialPortConfig"]

DEFAULT_MAX_BUFFERED = 10_000
"""Messages a serial source holds in memory while the store is stalled, before it spills to its spool."""


class SerialPortConfig(SourceConfig):
    """A serial port (RS-485 adapter, RS-232 logger) and how much is held while the store is stalled.

    Attributes:
        device: the device (prefer ``/dev/serial/by-id/...``) or a pyserial URL (``rfc2217://host:port``).
        max_buffered_messages: messages read but not yet durable that the source keeps in memory
            while the store is stalled; past it they spill to the source's disk spool (``archmon run``:
            ``<database>.spool/<id>.db``), or without one the oldest not yet handed to the store are
            dropped, counted (``dropped``) and logged. At least 2 (one in flight, the newest waiting).
        max_buffered_bytes: the same bound in payload bytes (a line is at most 4096 bytes, a Modbus
            answer a few hundred), whichever is reached first.
        spool_max_bytes: bound of the disk spool (payload, topic and 32 bytes per message); a warning
            and ``spool_warning`` at half of it; past it the oldest spooled messages not yet handed to
            the store are dropped (counted ``dropped``). 0: no spool (drop past the memory bound).
    """

    device: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    max_buffered_messages: int = Field(default=DEFAULT_MAX_BUFFERED, ge=2, le=1_000_000)
    max_buffered_bytes: int = Field(default=DEFAULT_MAX_BUFFERED_BYTES, ge=64 * 1024, le=1024 * 1024 * 1024)
    spool_max_bytes: int = Field(default=DEFAULT_SPOOL_MAX_BYTES, ge=0, le=1024**4)

    def problems(self, where: str, sensors: Sequence[PlacedSensor], config: Config) -> list[str]:
        """The spool beside the database must be usable (``archmon run`` keeps it there)."""
        if not self.spool_max_bytes:
            return []
        return spool_problems(spool_dir(config.resolve(config.storage.sqlite_path)), self.id,
                              f"{where}.spool_max_bytes")
