"""What the pipeline hands to the store writer: a batch of readings, rejects and counter deltas."""

from __future__ import annotations

from dataclasses import dataclass, field

from archmon.domain import Reading

__all__ = [
    "AvailabilityRecord",
    "Batch",
    "MqttReceipt",
    "QuarantineRecord",
    "UnassignedRecord",
    "WriteResult",
    "mqtt_messages_counter",
]


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A message or value that was rejected, kept verbatim with the reason.

    Attributes:
        received_ms: when the raw message arrived (UTC epoch ms).
        source: source id; topic: MQTT topic or serial pseudo-topic.
        payload: the raw bytes as received, or their first ``storage.quarantine_payload_max_bytes``.
        reason: one line saying what was wrong, naming the field and the bad value (topic and reason are cut
            to ``collector.quarantine.TEXT_MAX_BYTES``).
        stage: ``decode``, ``validate``, ``route``, ``store`` (refused by the store for good) or ``internal``.
        sensor: the configured sensor, when one was identified.
        payload_size: size of the whole payload in bytes (None: ``payload`` is all of it).
        payload_sha256: SHA-256 of the whole payload (None: the store computes it from ``payload``).
    """

    received_ms: int
    source: str
    topic: str
    payload: bytes
    reason: str
    stage: str
    sensor: str | None = None
    payload_size: int | None = None
    payload_sha256: bytes | None = None


@dataclass(frozen=True, slots=True)
class UnassignedRecord:
    """A message from a device no sensor is configured for, with what it would give.

    ``readings_json`` is ``{"readings": [...], "rejected": [...]}`` (``collector.quarantine``); ``payload`` is
    its first ``collector.quarantine.UNASSIGNED_PAYLOAD_MAX_BYTES``.
    """

    received_ms: int
    source: str
    device_topic: str
    format: str
    payload: bytes
    readings_json: str


@dataclass(frozen=True, slots=True)
class AvailabilityRecord:
    """An availability/LWT message for a configured sensor."""

    sensor: str
    state: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class MqttReceipt:
    """The receive time given to a QoS 1/2 MQTT message without device time, kept for its redelivery.

    If archmon stores the message's readings but dies (or loses the connection) before its PUBACK
    reaches the broker, the broker sends the message again with the same packet id and the DUP flag;
    the pipeline then finds this receipt and stamps the copy with the same time, so its readings hit
    their idempotent keys instead of being stored twice.

    Attributes:
        source: MQTT source id.
        mid: the packet id the broker sent the message under.
        digest: SHA-256 of the topic, a NUL byte and the payload (``collector.pipeline.message_digest``).
        received_ms: the receive time its readings were stamped with (UTC epoch ms).
    """

    source: str
    mid: int
    digest: bytes
    received_ms: int


def mqtt_messages_counter(source: str) -> str:
    """Name of the counter of QoS 1/2 messages an MQTT source handed to the pipeline.

    It is committed with each message's batch, so the store can tell how many messages came after a
    receipt: packet ids are 16 bits and come back, so a receipt some 65,535 messages old belongs to
    an earlier message that merely had the same packet id.
    """
    return f"source.{source}.qos_messages"


@dataclass(slots=True)
class Batch:
    """Everything one raw message (or several, merged by the writer) produced, written in one transaction."""

    readings: list[Reading] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    unassigned: list[UnassignedRecord] = field(default_factory=list)
    availability: list[AvailabilityRecord] = field(default_factory=list)
    receipts: list[MqttReceipt] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, tuple[int, int]] = field(default_factory=dict)
    """State values replaced rather than added: name -> (value, ts_ms), e.g. ``source.<id>.connected``."""

    def count(self, name: str, delta: int = 1) -> None:
        """Add ``delta`` to counter ``name``."""
        self.counters[name] = self.counters.get(name, 0) + delta

    def extend(self, other: Batch) -> None:
        """Merge another batch into this one."""
        self.readings.extend(other.readings)
        self.quarantine.extend(other.quarantine)
        self.unassigned.extend(other.unassigned)
        self.availability.extend(other.availability)
        self.receipts.extend(other.receipts)
        for name, delta in other.counters.items():
            self.count(name, delta)
        self.gauges.update(other.gauges)

    def __bool__(self) -> bool:
        return bool(
            self.readings
            or self.quarantine
            or self.unassigned
            or self.availability
            or self.receipts
            or self.counters
            or self.gauges
        )


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a committed write did: newly stored readings and duplicates ignored."""

    stored: tuple[Reading, ...] = ()
    duplicates: int = 0
