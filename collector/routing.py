"""Which configured sensor a raw message belongs to, and how to decode it.

Built once from the validated config; the sources' typed configs come from the source registry
(``collector.sources``). MQTT sensors are found by their device topic (the longest configured prefix
of the message topic, or a wildcard filter); serial sensors by port and bus address.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

from archmon.config import IMPORT_SOURCE, Config, SensorConfig
from collector.mqtt_config import MqttSourceConfig
from collector.source import SourceConfig
from collector.sources import source_configs
from devices.decoded import DecodeOptions
from devices.formats import make_options

__all__ = ["Router", "Subscription", "decode_options", "minimal_filters"]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A source-level topic filter with the format of whatever arrives on it."""

    filter: str
    format: str
    options: DecodeOptions


def decode_options(raw: dict[str, object], *, device_tz: str) -> DecodeOptions:
    """Build DecodeOptions from a sensor's or subscription's ``options`` table, the source's zone as default.

    Keys that are not DecodeOptions fields go to ``extra`` (e.g. ``base_topic``, ``block``, ``invert``).

    Raises:
        ConfigError: an option has the wrong type.
    """
    return make_options({"device_tz": device_tz, **raw})


def _unshared(topic_filter: str) -> str:
    """The plain filter of an MQTT v5 shared subscription ``$share/<group>/<filter>``."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter


class Router:
    """Maps (source, topic) to sensors; see the module docstring.

    Args:
        config: the validated configuration.
        sources: its sources' typed configs (default: validated here through the registry).

    Raises:
        ConfigError: a source table is invalid.
    """

    def __init__(self, config: Config, sources: Sequence[SourceConfig] | None = None) -> None:
        self._exact: dict[tuple[str, str], SensorConfig] = {}
        self._wildcard: dict[str, list[SensorConfig]] = defaultdict(list)
        self._by_address: dict[tuple[str, int], list[SensorConfig]] = defaultdict(list)
        self._by_port: dict[str, list[SensorConfig]] = defaultdict(list)
        self._subscriptions: dict[str, list[Subscription]] = defaultdict(list)
        self.options: dict[str, DecodeOptions] = {}
        typed = source_configs(config) if sources is None else sources
        brokers = [s for s in typed if isinstance(s, MqttSourceConfig)]
        mqtt_tz = {m.id: m.device_tz or config.site.timezone for m in brokers}
        self._mqtt_ids = set(mqtt_tz)
        for mqtt in brokers:
            for sub in mqtt.subscriptions:
                options = decode_options(sub.options, device_tz=mqtt_tz[mqtt.id])
                self._subscriptions[mqtt.id].append(Subscription(sub.filter, sub.format, options))
        for sensor in config.sensors:
            if not sensor.enabled or sensor.source == IMPORT_SOURCE:  # readings only from files: nothing to route
                continue
            tz = mqtt_tz.get(sensor.source, config.site.timezone)
            self.options[sensor.id] = decode_options(sensor.options, device_tz=tz)
            if sensor.source in self._mqtt_ids:
                assert sensor.topic is not None
                if "+" in sensor.topic or "#" in sensor.topic:
                    self._wildcard[sensor.source].append(sensor)
                else:
                    self._exact[(sensor.source, sensor.topic.rstrip("/"))] = sensor
            elif sensor.address is not None:
                self._by_address[(sensor.source, sensor.address)].append(sensor)
            else:
                self._by_port[sensor.source].append(sensor)
        # other instances' sensors ([service] partition): known, so their messages are not unknown devices
        self._foreign_exact: dict[tuple[str, str], SensorConfig] = {}
        self._foreign_wildcard: dict[str, list[SensorConfig]] = defaultdict(list)
        for sensor in config.foreign_sensors:
            if sensor.enabled and sensor.source in self._mqtt_ids and sensor.topic:
                if "+" in sensor.topic or "#" in sensor.topic:
                    self._foreign_wildcard[sensor.source].append(sensor)
                else:
                    self._foreign_exact[(sensor.source, sensor.topic.rstrip("/"))] = sensor

    def is_mqtt(self, source: str) -> bool:
        """True if ``source`` is a configured MQTT broker."""
        return source in self._mqtt_ids

    def mqtt_sensor(self, source: str, topic: str) -> SensorConfig | None:
        """The sensor whose device topic is the longest prefix of ``topic`` (or whose filter matches)."""
        parts = topic.split("/")
        for end in range(len(parts), 0, -1):
            sensor = self._exact.get((source, "/".join(parts[:end])))
            if sensor is not None:
                return sensor
        for sensor in self._wildcard.get(source, ()):
            assert sensor.topic is not None
            if topic_matches_sub(sensor.topic, topic):
                return sensor
        return None

    def foreign_sensor(self, source: str, topic: str) -> SensorConfig | None:
        """The sensor another instance owns (``[service] partition``) that ``topic`` belongs to, if any."""
        parts = topic.split("/")
        for end in range(len(parts), 0, -1):
            sensor = self._foreign_exact.get((source, "/".join(parts[:end])))
            if sensor is not None:
                return sensor
        wildcards = self._foreign_wildcard.get(source, ())
        return next((s for s in wildcards if s.topic and topic_matches_sub(s.topic, topic)), None)

    def subscription(self, source: str, topic: str) -> Subscription | None:
        """The first source subscription whose filter matches ``topic``."""
        for sub in self._subscriptions.get(source, ()):
            if topic_matches_sub(_unshared(sub.filter), topic):
                return sub
        return None

    def bus_sensors(self, source: str, address: int) -> list[SensorConfig]:
        """Sensors at one Modbus address on one bus (several for a multi-channel input module)."""
        return self._by_address.get((source, address), [])

    def port_sensors(self, source: str) -> list[SensorConfig]:
        """Sensors on a serial line source."""
        return self._by_port.get(source, [])

    def mqtt_topics(self, source: str, *, extras: bool = True) -> list[str]:
        """Topic filters to subscribe on ``source``: each sensor's device topic with everything below it,
        and (``extras``) the source's own subscriptions, without filters another one already covers
        (overlapping subscriptions make brokers deliver a message once per match)."""
        topics = [f"{topic}/#" for (src, topic) in self._exact if src == source]
        topics += [s.topic for s in self._wildcard.get(source, ()) if s.topic]
        if extras:
            topics += [sub.filter for sub in self._subscriptions.get(source, ())]
        return minimal_filters(topics)


def minimal_filters(filters: list[str]) -> list[str]:
    """Drop duplicates and filters that a ``.../#`` filter in the list already covers.

    Linear in the number of filters for the usual ``<device topic>/#`` filters (a site may have
    thousands); filters with ``+`` before their ``#`` are compared pairwise, and sites have few.
    """
    unique = list(dict.fromkeys(filters))
    plain = [f for f in unique if not f.startswith("$share/")]
    if "#" in plain:
        return ["#"] + [f for f in unique if f.startswith("$share/")]
    prefixes = {f[:-2] for f in plain if f.endswith("/#") and "+" not in f}
    wildcards = [f for f in plain if f.endswith("#") and "+" in f]
    out = []
    for candidate in unique:
        if candidate.startswith("$share/"):
            out.append(candidate)
            continue
        levels = candidate.split("/")
        covered = any(
            "/".join(levels[:end]) in prefixes and candidate != "/".join(levels[:end]) + "/#"
            for end in range(1, len(levels) + 1)
        ) or any(
            other != candidate and topic_matches_sub(other, candidate.replace("+", "\x00")) for other in wildcards
        )
        if not covered:
            out.append(candidate)
    return out
