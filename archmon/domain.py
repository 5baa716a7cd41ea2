"""Domain value objects shared by every package: raw messages and readings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Availability", "RawMessage", "Reading"]

Availability = Literal["online", "offline"]


@dataclass(frozen=True, slots=True, weakref_slot=True)
class RawMessage:
    """One message as a source received it, before decoding.

    Weakly referenceable: the pipeline remembers what it decided about a message (its receive-time
    stamp) for as long as a source holds the message, so handing it over again gives the same result.

    Attributes:
        source: id of the configured source (MQTT broker or serial port) it came from.
        topic: the MQTT topic; for serial sources ``modbus/<port>/<address>`` or ``line/<port>``.
        payload: the raw bytes, kept verbatim for quarantine.
        received_ms: UTC epoch milliseconds when archmon received it.
        retained: True for an MQTT retained message replayed by the broker.
        mid: the MQTT packet id of a QoS 1/2 message (None for QoS 0 and other sources).
        dup: True when the broker marked a QoS 1/2 message as a redelivery (DUP flag).
        replayed: True for a QoS 1/2 message without the DUP flag that the broker may nonetheless be sending
            again: it came at the start of a connection that resumed a session, with a packet id not ahead
            of those already received (a broker restored from older persisted state resends without DUP).
    """

    source: str
    topic: str
    payload: bytes
    received_ms: int
    retained: bool = False
    mid: int | None = None
    dup: bool = False
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored measurement: ``(sensor, quantity, ts)`` is its identity.

    Attributes:
        sensor: configured sensor id.
        quantity: ``temperature`` (°C), ``humidity`` (%RH), ``smoke``/``door``/``leak`` (0/1; door 1 = open),
            ``light`` (lx), ``uv`` (µW/lm), ``battery`` (%), or a free-form extra.
        value: value in the canonical unit, after calibration.
        ts_ms: UTC epoch milliseconds.
        room: room id of the sensor ("" for none).
    """

    sensor: str
    quantity: str
    value: float
    ts_ms: int
    room: str = field(default="")
