"""Config files the benches write: one site with a smoke detector over MQTT and one notification channel.

``bench_alert_mail.py`` (SMTP) and ``bench_notify.py`` (webhook) measure the same path, a smoke reading
published → the alert → one notification, and differ only in the channel and the contact's address; the
rest of the site (room, broker, sensor, rules, route) is written here once so the two cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_smoke_site"]


def write_smoke_site(folder: Path, *, broker_port: int, client_id: str, channel: str, channel_toml: str,
                     contact_toml: str) -> Path:
    """Write ``folder/archmon.toml``: room A1, smoke detector ``smoke1`` on ``zigbee2mqtt/smoke1``, one channel.

    The stale rule is off, the smoke alert clears at once (``close_after_s = 0``), critical alerts repeat
    without delay and never escalate, and the one route sends every level to contact ``zhang`` through
    ``channel``.

    Args:
        folder: where the config and its database (``archmon.db``) go.
        broker_port: the loopback Mosquitto's port.
        client_id: the service's MQTT client id.
        channel: the channel's name, as the route names it.
        channel_toml: the lines of the ``[notify.channels.<channel>]`` table (its ``type`` and options).
        contact_toml: the contact's address lines (``email = "…"``, ``phone = "…"``).

    Returns:
        The config file's path.
    """
    path = folder / "archmon.toml"
    path.write_text(f'''
[site]
name = "bench"
[storage]
sqlite_path = "{folder / 'archmon.db'}"
[[rooms]]
id = "A1"
[[mqtt]]
id = "b"
port = {broker_port}
client_id = "{client_id}"
[[sensors]]
id = "smoke1"
room = "A1"
kind = "smoke"
source = "b"
topic = "zigbee2mqtt/smoke1"
format = "zigbee2mqtt"
[alerts.rules.stale]
enabled = false
[alerts.rules.smoke]
close_after_s = 0
[alerts.notify]
repeat_s = {{ critical = 0 }}
escalate = []
[notify.channels.{channel}]
{channel_toml.strip()}
[[notify.contacts]]
name = "zhang"
{contact_toml.strip()}
[[notify.routes]]
name = "all"
levels = [{{ contacts = ["zhang"], channels = ["{channel}"] }}]
''', encoding="utf-8")
    return path
