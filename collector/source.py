"""The one interface every source kind implements, and the base of every kind's config schema.

A source reads a device, a bus or a broker and hands raw messages to a **sink**: a callable taking
messages and returning a future that resolves once everything they produced is durable (the
pipeline's ``process_many`` in front of the store writer), or fails with the store's error. Sources
never talk to storage.

Lifecycles are narrow (STYLE.md 3):

- building a source validates its config and never touches the network or a port;
- a **push source** (MQTT, a serial line's reader thread) has :meth:`PushSource.start` and ``stop``;
- a **polling source** (Modbus) has one :meth:`PollingSource.gather` step per ``interval_s``, which
  the service schedules, and ``stop``;
- every source has ``stats()`` (counters, ``connected`` and other gauges) and ``connected``.

A kind may have no running source at all (readings imported from files): its registry entry has no
``build``, and its sensors need nothing more than ``source = "<id>"``.

Each kind also says how its messages are decoded: a **decode step** (:data:`DecodeStep`), made once per
configured source, routes a message to its sensors and hands their values to the pipeline's shared
steps (:class:`Handling`: validate, calibrate, stamp, quarantine). The pipeline asks the registry for
it; it knows no kind by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from archmon.config import ID_PATTERN, Config, SensorConfig
from archmon.domain import RawMessage

if TYPE_CHECKING:
    from pathlib import Path

    from collector.quarantine import QuarantineKeeper
    from collector.receipts import ReceiptBook
    from collector.records import Batch
    from collector.routing import Router
    from devices.decoded import Decoded, DecodedValue, DecodeOptions

__all__ = [
    "DecodeStep",
    "DecoderFactory",
    "DeviceKey",
    "Handling",
    "MessageSink",
    "PlacedSensor",
    "PollingSource",
    "PushSource",
    "Source",
    "SourceConfig",
    "SourceContext",
]

MessageSink = Callable[[Sequence[RawMessage]], "Future[Any]"]
"""Takes raw messages (in arrival order), returns one future resolved when all their readings are durable.

It may block while the store writer's queue is full; sources that must not block (a serial reader
thread) hand messages over from a thread of their own (:class:`collector.handover.Handover`).
"""


class PlacedSensor(NamedTuple):
    """A configured sensor and its key path in the file (``sensors[3] (paper-th)``) for messages."""

    where: str
    sensor: SensorConfig


class DeviceKey(NamedTuple):
    """What identifies a sensor's device on its source, to find two sensors claiming one device.

    Attributes:
        label: what the value is, for the message (``topic``, ``address/channel``).
        value: the identity itself.
    """

    label: str
    value: str


class SourceConfig(BaseModel):
    """Base of every source kind's config schema: ``kind`` and ``id``, unknown keys refused.

    A kind's schema narrows ``kind`` to its own name (``kind: Literal["mqtt"] = "mqtt"``) and may
    override :meth:`problems` and :meth:`device_key` with what its sensors must say.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    id: str = Field(pattern=ID_PATTERN)

    def problems(self, where: str, sensors: Sequence[PlacedSensor], config: Config) -> list[str]:
        """Problems the schema cannot see alone: unknown formats or presets, what each sensor must say.

        Args:
            where: this table's key path (``sources[2] (bus1)``).
            sensors: the enabled and disabled sensors whose ``source`` is this one.
            config: the whole configuration (register maps, site zone).

        Returns:
            One line per problem, each starting with a key path (no file name).
        """
        return []

    def device_key(self, sensor: SensorConfig) -> DeviceKey | None:
        """The identity of ``sensor``'s device on this source (None: sensors never share one)."""
        return None


@runtime_checkable
class Source(Protocol):
    """What the service needs of every running source."""

    @property
    def connected(self) -> bool:
        """True while the source reaches its device, bus or broker (a gauge on ``archmon status``)."""
        ...

    def stats(self) -> Mapping[str, int]:
        """Counters and gauges (``connected``, ``buffered``...) by name; the service persists them."""
        ...

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, hand over what was read and release the port or connection, within ``timeout`` s."""
        ...


@runtime_checkable
class PushSource(Source, Protocol):
    """A source that runs by itself (a network loop or a reader thread) once started."""

    def start(self) -> None:
        """Start in the background; never raises for an unreachable device (it retries)."""
        ...


@runtime_checkable
class PollingSource(Source, Protocol):
    """A source read in steps: the service calls :meth:`gather` every ``interval_s`` seconds."""

    @property
    def interval_s(self) -> float:
        """Seconds between two gathers."""
        ...

    def gather(self) -> None:
        """Read every device once and hand the messages over; never raises."""
        ...


class Handling(Protocol):
    """What a decode step gets from the pipeline for one message: the shared steps, into one batch."""

    @property
    def batch(self) -> Batch:
        """The batch being built (counters, readings, rejects)."""
        ...

    @property
    def config(self) -> Config:
        """The configuration in force (register maps, site zone)."""
        ...

    @property
    def router(self) -> Router:
        """Which sensor a message belongs to (by topic, bus address or port)."""
        ...

    @property
    def receipts(self) -> ReceiptBook:
        """MQTT receipts (redelivered copies get their first receive time)."""
        ...

    @property
    def quarantine(self) -> QuarantineKeeper:
        """The bounded quarantine (payload prefixes for unassigned devices)."""
        ...

    def accept(self, message: RawMessage, sensor: SensorConfig, values: Sequence[DecodedValue]) -> None:
        """Validate, calibrate and stamp ``values`` of ``sensor`` into the batch (rejects are quarantined)."""
        ...

    def reject(self, message: RawMessage, reason: str, stage: str, sensor: str | None = None) -> None:
        """Quarantine ``message`` with a one-line reason (``stage``: route, decode, validate)."""
        ...

    def decode(self, message: RawMessage, fmt: str, options: DecodeOptions, sensor: SensorConfig | None
               ) -> Decoded | None:
        """Decode with payload format ``fmt``; None (counted ``ignored`` or quarantined) if it gives nothing."""
        ...

    def warn_once(self, key: str, fmt: str, *args: object) -> None:
        """Log a warning the first time ``key`` is seen (then at debug level)."""
        ...


DecodeStep = Callable[[Handling, RawMessage], None]
"""Decodes one message of one source into the batch through :class:`Handling`; may raise only for a bug."""

DecoderFactory = Callable[[Any, Config], DecodeStep]
"""Makes the decode step of one source from its validated config (compiling patterns once) and the config."""


@dataclass(frozen=True)
class SourceContext:
    """What a kind's ``build`` gets besides its own config.

    Attributes:
        config: the whole configuration (sensors, register maps, site name).
        sink: where the source hands its raw messages (see :data:`MessageSink`).
        router: the pipeline's router (which topics the configured sensors need, for instance).
        max_chunk: most messages per sink call (the store writer's batch size).
        where: the source's table in the file (``sources[0] (broker)``), for messages naming it.
        spool_dir: where serial sources keep their disk spools (``collector.spool``; None: no spool,
            a serial source drops its oldest messages past its memory bound).
    """

    config: Config
    sink: MessageSink
    router: Router
    max_chunk: int = 500
    where: str = ""
    spool_dir: Path | None = None
