"""The service's part in the city (``[city]`` on a site, ``[central]`` on the city's own archmon): built at
start when configured, started with the service, stopped early in its stop (a site's "offline" goes out
while the rest stops). A broker that cannot be reached never holds up collection: both connect in the
background and retry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from archmon.config import Config
from archmon.hub import EventHub

__all__ = ["CityParts", "build_city"]

log = logging.getLogger("archmon.app")


class CityParts:
    """The site publisher and/or the central subscriber of one service, and the central InfluxDB client.

    Attributes:
        publisher: ``dashboards.city.SitePublisher`` (``[city]``), or None.
        subscriber: ``dashboards.city.CitySubscriber`` (``[central]``), or None.
        influx: the central InfluxDB's client (``[central.influxdb]``), or None.
    """

    def __init__(self, publisher: Any = None, subscriber: Any = None, influx: Any = None) -> None:
        self.publisher = publisher
        self.subscriber = subscriber
        self.influx = influx

    @property
    def state(self) -> Any:
        """The central's ``CityState`` (None on a site that only publishes)."""
        return self.subscriber.state if self.subscriber is not None else None

    def start(self) -> None:
        """Connect (in the background) and start."""
        for part in (self.publisher, self.subscriber):
            if part is not None:
                part.start()

    def stop(self, timeout: float) -> None:
        """Publish the site's "offline", disconnect, close."""
        for part in (self.publisher, self.subscriber):
            if part is not None:
                try:
                    part.stop(timeout / 2)
                except Exception:  # the city's loss, never the stop's
                    log.exception("city: stop failed")
        if self.influx is not None:
            self.influx.close()


def build_city(config: Config, db_path: Path, hub: EventHub | None) -> CityParts | None:
    """The city parts ``config`` asks for, or None.

    Raises:
        ConfigError: a password or TLS file of ``[city.broker]``/``[central.broker]`` cannot be read.
    """
    from dashboards.city import CitySubscriber, SitePublisher

    publisher = SitePublisher(config, db_path, hub) if config.city is not None and config.city.enabled else None
    central = config.central if config.central is not None and config.central.enabled else None
    subscriber = CitySubscriber(config) if central is not None else None
    influx = None
    if central is not None and central.influxdb is not None:
        from collector.forward.setup import client_for

        influx = client_for(config, central.influxdb, "central.influxdb")
    if publisher is None and subscriber is None:
        return None
    return CityParts(publisher, subscriber, influx)
