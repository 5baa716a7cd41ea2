"""Splitting a large site among several ``archmon run`` instances by sensor (``[service] partition = "K/N"``).

A sensor's alert state (its windows, delays, stale timer) must live in one process, so a site too large for
one instance is split by sensor, never by message: every instance reads the same configuration file, and
instance K of N keeps only the sensors it owns. It subscribes to those sensors' topics only, judges them,
stores them in its own SQLite file and forwards them; the union of the N instances is the whole site.

Ownership is rendezvous (highest random weight) hashing of a stable key: the sensor id for a sensor on an
MQTT broker, and the source id for a sensor on a serial port (Modbus RTU, serial line: a port can be opened by
one process only, so a bus goes with all its sensors). It depends on the key and N alone, never on the order
or number of other sensors: adding or removing sensors moves no other sensor, and going from N to N+1
instances moves only the sensors the new instance takes (about 1/(N+1) of them), none between the old ones.

Store-only instances (``[service] store_only = true``) judge nothing; they may share an MQTT broker's
messages through an MQTT v5 shared subscription (``share_group`` on the MQTT source), which hands each message
to one member of the group, so their MQTT sensors are not split (the broker splits the messages); their
serial sources still are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archmon.config import Config, SensorConfig

__all__ = ["Partition", "parse_partition", "sensor_key", "split_config"]

_FORM = re.compile(r"^\s*([0-9]+)\s*/\s*([0-9]+)\s*$")
MAX_INSTANCES = 256


@dataclass(frozen=True, slots=True)
class Partition:
    """Instance ``index`` (1-based) of ``count``.

    Attributes:
        index: this instance's number, 1..count.
        count: how many instances share the site.
    """

    index: int = 1
    count: int = 1

    @property
    def split(self) -> bool:
        """True when the site is shared by more than one instance."""
        return self.count > 1

    @property
    def label(self) -> str:
        """``K/N`` as written in the file."""
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """What makes this instance's MQTT client ids and status topics its own (``-2of3``; empty for 1/1)."""
        return f"-{self.index}of{self.count}" if self.split else ""

    def owner(self, key: str) -> int:
        """The instance (1..count) that owns ``key``: the highest of ``sha256(instance, key)``."""
        if not self.split:
            return 1
        data = key.encode("utf-8")
        return max(range(1, self.count + 1),
                   key=lambda i: hashlib.sha256(i.to_bytes(2, "big") + data).digest())

    def owns(self, key: str) -> bool:
        """True when this instance owns ``key``."""
        return self.owner(key) == self.index


def parse_partition(text: str) -> Partition:
    """``"K/N"`` as a :class:`Partition`.

    Raises:
        ValueError: not of the form K/N with 1 <= K <= N <= 256.
    """
    match = _FORM.match(text)
    if not match:
        raise ValueError(f'expected "K/N" (instance K of N, e.g. "2/3"), got {text!r}')
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count <= MAX_INSTANCES:
        raise ValueError(f"expected 1 <= K <= N <= {MAX_INSTANCES} in K/N, got {text!r}")
    return Partition(index, count)


def sensor_key(sensor_id: str, source_id: str, source_kind: str) -> str:
    """What decides a sensor's owner: its id on an MQTT broker; its source's id on a port (``source:ID``)."""
    return sensor_id if source_kind == "mqtt" else f"source:{source_id}"


def split_config(config: Config) -> Config:
    """The configuration as this instance sees it: its own sensors, MQTT sources, and the serial sources it
    owns; the other instances' sensors as :attr:`Config.foreign_sensors`. Unchanged for 1/1."""
    config = config.whole
    part = config.service.instance
    if not part.split:
        return config
    kinds = {table.id: table.kind for table in config.sources}
    store_only = config.service.store_only

    def mine(sensor: SensorConfig) -> bool:
        kind = kinds.get(sensor.source, "")
        if kind == "mqtt" and store_only:  # the shared subscription splits their messages
            return True
        return part.owns(sensor_key(sensor.id, sensor.source, kind))

    own = [s for s in config.sensors if mine(s)]
    sources = [t for t in config.sources if t.kind == "mqtt" or part.owns(sensor_key("", t.id, t.kind))]
    split = config.model_copy(update={"sensors": own, "sources": sources})
    split._label = config.label
    split._foreign = tuple(s for s in config.sensors if not mine(s))
    split._whole = config
    return split
