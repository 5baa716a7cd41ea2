"""Many sites, one city: the ``[city]`` table of a site (what it tells the city's broker) and the ``[central]``
table of the city's own archmon (what it reads from that broker and from the central InfluxDB).

A site publishes each alert's current state to ``archmon/<site>/alerts/<id>`` and its health to
``archmon/<site>/status`` (both retained, QoS 1) on the city's broker; a central archmon subscribes to every
site's and shows the city overview (``dashboards.city``). Secrets come from the environment or a file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from archmon.forward_config import InfluxForwardConfig

__all__ = ["BrokerLink", "CentralConfig", "CityLinkConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerLink(_Model):
    """The city's MQTT broker, as one archmon reaches it.

    Attributes:
        host, port: the broker (8883 is customary for TLS).
        client_id: fixed and unique per archmon ("": ``archmon-city-<site>`` or ``archmon-central-<site>``).
        username, password_env, password_file: login (the password never in the file).
        tls: connect with TLS; ``ca_file`` verifies the broker (system CAs if unset); ``cert_file`` and
            ``key_file`` are a client certificate.
        keepalive_s: the broker publishes a site's "offline" will after 1.5 × this without traffic.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = ""
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> BrokerLink:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        return self


class CityLinkConfig(_Model):
    """``[city]`` on a site: publish its alerts and health to the city's broker.

    Attributes:
        enabled: publish at all.
        broker: the city's broker (``[city.broker]``).
        status_interval_s: how often the site's health is published; the central archmon calls a site out
            of contact after three intervals without one (or at once, on its "offline" will).
    """

    enabled: bool = True
    broker: BrokerLink = BrokerLink()
    status_interval_s: float = Field(default=30.0, ge=1, le=3600)


class CentralConfig(_Model):
    """``[central]``: this archmon shows the city overview of every site publishing to the city's broker.

    Attributes:
        enabled: run the city overview at all.
        broker: the city's broker (``[central.broker]``).
        influxdb: the central InfluxDB the sites forward to (``[central.influxdb]``, the options of
            ``[forward.influxdb]``: url, api, database, credentials); the overview reads each room's series
            from it. None: the overview shows what the sites publish only.
        stale_factor: a site is out of contact after this many of its status intervals without a status.
    """

    enabled: bool = True
    broker: BrokerLink = BrokerLink()
    influxdb: InfluxForwardConfig | None = None
    stale_factor: float = Field(default=3.0, gt=1, le=100)
