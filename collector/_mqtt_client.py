"""Building a configured paho client for ``collector.mqtt``: protocol, session, TLS, auth, will, topics.

Nothing here touches the network: ``build_client`` only sets options, ``connect_async`` is the caller's.
"""

from __future__ import annotations

import logging
import select
import ssl
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from archmon.errors import ConfigError
from collector.mqtt_config import MqttSourceConfig, tls_problems

__all__ = [
    "OFFLINE",
    "ONLINE",
    "LoopClient",
    "build_client",
    "connect_properties",
    "default_client_id",
    "default_status_topic",
    "more_to_read",
    "subscription_list",
    "validate_filter",
]

ONLINE = b"online"
OFFLINE = b"offline"


def default_client_id(site: str, source_id: str) -> str:
    """``archmon-<site>-<source id>``: fixed, so the broker keeps the session across restarts."""
    return f"archmon-{'_'.join(site.split())}-{source_id}"


def default_status_topic(site: str, source_id: str) -> str:
    """``archmon/<site>/status/<source id>``: where birth (``online``) and LWT (``offline``) go."""
    return f"archmon/{site}/status/{source_id}"


def validate_filter(topic_filter: str, where: str) -> str:
    """Check an MQTT topic filter (wildcards ``+`` and ``#`` in whole levels, ``#`` last).

    Raises:
        ConfigError: naming ``where`` and the bad filter.
    """
    problem = None
    if not topic_filter:
        problem = "is empty"
    elif "\x00" in topic_filter:
        problem = "contains a NUL character"
    elif len(topic_filter.encode("utf-8")) > 65535:
        problem = "is longer than 65535 bytes"
    else:
        levels = topic_filter.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                problem = "uses '#' other than as the whole last level"
            elif "+" in level and level != "+":
                problem = "uses '+' other than as a whole level"
    if problem:
        raise ConfigError(f"{where}: topic filter {topic_filter!r} {problem}")
    return topic_filter


def connect_properties(config: MqttSourceConfig, *, receive_maximum: int | None = None) -> Properties | None:
    """MQTT 5 CONNECT properties (None for MQTT 3.1.1): the session expiry interval and, if given, the
    Receive Maximum: QoS 1/2 messages the broker may send before waiting for acknowledgements (1..65535).

    archmon acknowledges only after a commit, so that is what it holds in memory while the store is
    stalled, whatever the broker's own ``max_inflight_messages`` (which binds MQTT 3.1.1 clients only).
    """
    if config.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = min(config.session_expiry_s, 0xFFFFFFFF)
    if receive_maximum is not None:
        props.ReceiveMaximum = min(max(1, receive_maximum), 65_535)
    return props


def subscription_list(
    config: MqttSourceConfig, topics: Sequence[str]
) -> list[tuple[str, int]] | list[tuple[str, SubscribeOptions]]:
    """The (filter, QoS) pairs for SUBSCRIBE.

    For MQTT 5 retained messages are only sent when the subscription is new (retain handling 1), so
    a resumed session does not replay old retained values as if they were news.
    """
    if config.protocol == "5":
        return [
            (topic, SubscribeOptions(qos=config.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB))
            for topic in topics
        ]
    return [(topic, config.qos) for topic in topics]


def more_to_read(client: mqtt.Client) -> bool:
    """Whether the client's socket has bytes waiting (paho reads them in its next loop pass)."""
    sock = client.socket()
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed under us: hand over what there is
        return False


class _DisconnectedOnPurpose(logging.Filter):
    """paho's network thread makes one more pass after a deliberate ``disconnect()`` closed the socket and
    logs it as an error ("Client is not connected … MQTT_CS_DISCONNECTED"): that pass is the normal end of a
    clean stop and says nothing, so it is dropped. The same words in any other state stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        text = record.getMessage()
        return not (text.startswith("Client is not connected")
                    and text.endswith(("MQTT_CS_DISCONNECTED", "MQTT_CS_DISCONNECTING")))


_PAHO_LOG = logging.getLogger("collector.mqtt.paho")
_PAHO_LOG.addFilter(_DisconnectedOnPurpose())


class LoopClient(mqtt.Client):
    """paho's client with one hook: ``on_loop_misc`` runs in the network thread on every loop pass.

    paho calls ``loop_misc`` (public API) at the end of each pass of its loop, after reading and writing
    the socket. ``collector.mqtt`` uses the hook to send acknowledgements queued by other threads from the
    network thread, in one go, instead of one cross-thread wake-up per message.
    """

    on_loop_misc: Callable[[], None] | None = None

    def loop_misc(self) -> mqtt.MQTTErrorCode:
        """Run ``on_loop_misc``, then paho's own housekeeping (keepalive, ping)."""
        hook = self.on_loop_misc
        if hook is not None:
            hook()
        return super().loop_misc()


def build_client(
    config: MqttSourceConfig, *, client_id: str, status_topic: str, password: str | None, where: str = ""
) -> LoopClient:
    """A paho client with persistent session, manual ack, backoff, auth, TLS and the LWT set.

    Args:
        config: the validated source.
        client_id: the MQTT client id.
        status_topic: where the LWT goes.
        password: the broker password (None: none).
        where: the source's table in the file (``sources[0] (broker)``), named in errors; default
            ``mqtt[<id>]``.

    Raises:
        ConfigError: a TLS file cannot be loaded (naming the key and the file).
    """
    if config.protocol == "5":
        client = LoopClient(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
    else:
        client = LoopClient(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
    client.enable_logger(_PAHO_LOG)
    # paho annotates the delays as int; it only multiplies and compares them, so fractions work.
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)  # type: ignore[arg-type]
    if config.username is not None or password is not None:
        client.username_pw_set(config.username or "", password)
    if config.tls.enabled:
        _set_tls(client, config, f"{where or f'mqtt[{config.id}]'}.tls")
    client.will_set(status_topic, OFFLINE, qos=1, retain=True)
    return client


def _set_tls(client: mqtt.Client, config: MqttSourceConfig, where: str) -> None:
    tls = config.tls
    problems = tls_problems(tls, where)  # the words of `archmon check-config`, naming key and file
    if problems:
        raise ConfigError(problems)
    try:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}: cannot load certificates: {exc}") from exc
    if tls.insecure:
        client.tls_insecure_set(True)
