"""A paho client to the city's broker from ``[city.broker]`` / ``[central.broker]``: login, TLS, the will.

The city's state is retained on the broker and published again in full at every (re)connect, so these
clients use clean sessions: nothing is owed across a disconnect.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt

from archmon.city_config import BrokerLink
from archmon.config import Config, SiteConfig, read_secret
from archmon.errors import ConfigError

__all__ = ["city_client", "link_problems", "site_name_problems"]


def _path(config: Config, path: Path | None) -> Path | None:
    return None if path is None else config.resolve(path)


def link_problems(config: Config, link: BrokerLink, where: str) -> list[str]:
    """What would stop the link from being built: an unreadable password or TLS file (empty when fine)."""
    problems = []
    try:
        read_secret(link.password_env, _path(config, link.password_file), f"{where}.password")
    except ConfigError as exc:
        problems += exc.problems
    for key in ("ca_file", "cert_file", "key_file"):
        path = _path(config, getattr(link, key))
        if link.tls and path is not None and not path.is_file():
            problems.append(f"{where}.{key}: {path} is not a file")
    return [f"{config.label}: {p}" for p in problems]


def site_name_problems(config: Config) -> list[str]:
    """A site publishing to the city (``[city]``) under the default ``[site] name``: every site left at the
    default shares one topic level, so one site's alerts and status overwrite another's at the central."""
    if config.city is None or not config.city.enabled or config.site.name != SiteConfig().name:
        return []
    return [f"{config.label}: site.name: a site publishing to the city ([city]) needs its own [site] name; "
            f"\"{config.site.name}\" is the default, which every other site left at the default shares"]


def city_client(config: Config, link: BrokerLink, *, client_id: str, where: str,
                will: tuple[str, bytes] | None = None) -> mqtt.Client:
    """A client for ``link`` (not connected).

    Raises:
        ConfigError: the password or a TLS file cannot be read (naming the key).
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                         protocol=mqtt.MQTTv311)
    client.enable_logger(logging.getLogger("dashboards.city.paho"))
    client.reconnect_delay_set(1, 30)
    password = read_secret(link.password_env, _path(config, link.password_file), f"{where}.password")
    if link.username is not None or password is not None:
        client.username_pw_set(link.username or "", password)
    if link.tls:
        ca, cert, key = (_path(config, p) for p in (link.ca_file, link.cert_file, link.key_file))
        try:
            client.tls_set(ca_certs=str(ca) if ca else None, certfile=str(cert) if cert else None,
                           keyfile=str(key) if key else None, cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{where}: cannot load certificates: {exc}") from exc
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    return client
