"""Stopping a paho client's network thread: publishes racing the stop never fail, and the wake-up socket
pair is closed once the client is gone (never left to the garbage collector's order)."""

from __future__ import annotations

import gc
import threading

import paho.mqtt.client as mqtt
import pytest

from archmon.paho import stop_network_loop
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.mosquitto


def _connected(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_for(client.is_connected, "the client connected")
    return client


def test_publishes_racing_the_stop_never_raise(mosquitto: MosquittoBroker) -> None:
    failures: list[BaseException] = []
    for _ in range(20):
        client = _connected(mosquitto.port)
        started = threading.Event()

        def publish(client: mqtt.Client = client, started: threading.Event = started) -> None:
            try:
                for i in range(500):
                    client.publish("race/t", str(i), qos=0)
                    started.set()
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=publish)
        thread.start()
        started.wait(5)
        stop_network_loop(client)
        thread.join(10)
        client.disconnect()
    assert failures == []


class _Owner:
    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        client.on_message = self.on_message

    def on_message(self, *_: object) -> None:
        pass


def test_the_wake_up_pair_is_closed_with_the_client(mosquitto: MosquittoBroker) -> None:
    client = _connected(mosquitto.port)
    owner = _Owner(client)  # a reference cycle, as every source's callbacks make
    pair = [client._sockpairR, client._sockpairW]
    stop_network_loop(client)
    assert all(sock.fileno() != -1 for sock in pair)  # still open: another thread may publish
    client.disconnect()
    del client, owner
    gc.collect()
    assert [sock.fileno() for sock in pair] == [-1, -1]
