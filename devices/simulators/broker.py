"""An MQTT 3.1.1 broker running in-process (amqtt), so ``archmon demo`` needs no installed Mosquitto.

The broker runs its own asyncio loop in a daemon thread. It accepts anonymous clients on one TCP
listener and keeps everything in memory (nothing survives :meth:`EmbeddedBroker.stop`).

What works, checked by ``tests/devices/test_simulators_mqtt.py`` with paho clients: QoS 1 both ways,
retained messages, persistent sessions (``clean_session=False``: QoS 1 messages published while the
client is away are delivered when it comes back), last will (LWT) on an abnormal disconnect, and paho's
manual acknowledgement.

Deviations of amqtt 0.12 from Mosquitto, and what this module does about them:

* amqtt's stock anonymous-auth plugin marks every client anonymous, and amqtt drops anonymous sessions
  on disconnect and never queues for them, so persistent sessions would silently not work. This module
  installs its own accept-everyone plugin that does not mark sessions anonymous.
* amqtt replays the messages queued for a persistent session with the RETAIN flag set; a collector
  that treats retained replays as old values would misjudge them. Here they are delivered with RETAIN
  off, as Mosquitto does.
* On every connect amqtt sends the retained messages of every topic filter anyone has subscribed to,
  even to clients that never subscribed to them. Here a client only receives retained messages for its
  own subscriptions (still also when a persistent session reconnects, flagged RETAIN).
* Unacknowledged QoS 1 messages that were in flight when a client dropped are not redelivered on
  reconnect (amqtt keeps no outgoing in-flight state across connections). A message is only kept for
  an absent persistent session if it arrives while the session is disconnected. The demo tolerates
  this: it re-publishes every interval, and the store's writes are idempotent.
* A connection that closes before sending CONNECT (a port probe) is closed here; amqtt left its
  socket open.
* amqtt waits only 5 s for a PUBACK from a subscriber; a collector that holds its manual ack longer
  makes amqtt log a warning and forget the message (no redelivery).
* amqtt's shutdown can hang on a client's reader task; :meth:`EmbeddedBroker.stop` aborts every client
  connection first and bounds the shutdown.
* No persistence to disk, no TLS, no authentication, no ``$SYS`` topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import warnings
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from archmon.errors import TransportError

__all__ = ["EmbeddedBroker"]

logger = logging.getLogger(__name__)

_NOISY_LOGGERS = ("amqtt", "transitions", "websockets", "passlib", "dacite")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from amqtt.broker import Broker
    from amqtt.plugins.base import BaseAuthPlugin
    from amqtt.session import Session


class OpenAuthPlugin(BaseAuthPlugin):
    """Accept every client without marking its session anonymous (so persistent sessions queue)."""

    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session: Session) -> bool | None:
        """Accept the client.

        Args:
            session: the amqtt session of the connecting client.

        Returns:
            Always True.
        """
        session.is_anonymous = False
        return True


class _ArchmonBroker(Broker):
    """amqtt's broker with the fixes described in the module docstring."""

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> Any:
        try:
            return await super()._initialize_client_session(reader, writer, remote_address, remote_port)
        except Exception:
            with contextlib.suppress(Exception):  # amqtt leaves the socket open when CONNECT never came
                await writer.close()
            raise

    async def _publish_session_retained_messages(self, session: Session) -> None:
        handler = self._get_handler(session)
        if handler is None:
            return
        pending = []
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            publish = handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
            pending.append(asyncio.ensure_future(publish))
        if pending:
            await asyncio.wait(pending)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter = subscription[0]
        holders = self._subscriptions.get(topic_filter, [])
        if not any(holder.client_id == session.client_id for holder, _qos in holders):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)


class EmbeddedBroker:
    """An in-process MQTT broker for demos and tests.

    Args:
        host: address to listen on.
        port: TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).

    Example:
        >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
        ...     print(broker.port)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the broker listens on (the real one when 0 was asked for).

        Raises:
            RuntimeError: if the broker has not been started.
        """
        if self._port is None:
            raise RuntimeError("EmbeddedBroker.port: the broker is not running; call start() first")
        return self._port

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive() and self._port is not None

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        """Start the broker and return once its listener accepts connections.

        Args:
            timeout_s: how long to wait for the listener.

        Returns:
            self, for chaining.

        Raises:
            TransportError: if the broker could not listen (port taken, bad address) in time.
        """
        if self._thread is not None:
            raise RuntimeError("EmbeddedBroker.start: already started")
        _quiet_amqtt_logging()
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"embedded-broker-{self.host}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise TransportError(f"embedded MQTT broker on {self.host}:{self._requested_port} did not start")
        if self._error is not None:
            error = self._error
            self._thread.join(timeout_s)
            self._thread = None
            raise TransportError(
                f"embedded MQTT broker could not listen on {self.host}:{self._requested_port}: {error}"
            ) from error
        logger.info("embedded MQTT broker listening on %s:%d", self.host, self._port)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the broker down and join its thread (idempotent).

        Args:
            timeout_s: how long to wait for the thread to end.
        """
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout_s)
        if thread.is_alive():
            logger.warning("embedded MQTT broker thread did not end within %.1f s", timeout_s)
        self._thread = None
        self._port = None
        logger.info("embedded MQTT broker stopped")

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self._requested_port}"}},
            "timeout_disconnect_delay": 0,
            "plugins": {f"{__name__}.OpenAuthPlugin": {}},
        }

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), never lost in the thread
            self._error = exc
            self._ready.set()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            broker = _ArchmonBroker(self._config())
            await broker.start()
        try:
            server = broker._servers["default"].instance
            self._port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stop_event.wait()
        finally:
            _abort_client_connections(broker)
            try:
                await asyncio.wait_for(broker.shutdown(), timeout=5.0)
            except TimeoutError:
                logger.warning("embedded MQTT broker: amqtt did not shut down within 5 s; cancelling its tasks")
            await _cancel_leftover_tasks()


def _abort_client_connections(broker: Broker) -> None:
    """Drop every client connection first: amqtt's shutdown can hang on a reader that never wakes up."""
    for _session, handler in list(broker._sessions.values()):
        stream_writer = getattr(getattr(handler, "writer", None), "_writer", None)
        transport = getattr(stream_writer, "transport", None)
        if transport is not None:
            transport.abort()


async def _cancel_leftover_tasks() -> None:
    """Cancel the per-client tasks amqtt leaves behind so the loop closes without warnings."""
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftovers:
        task.cancel()
    if leftovers:
        await asyncio.wait(leftovers, timeout=2.0)


def _quiet_amqtt_logging() -> None:
    for name in _NOISY_LOGGERS:
        named = logging.getLogger(name)
        if named.level == logging.NOTSET or named.level < logging.WARNING:
            named.setLevel(logging.WARNING)
