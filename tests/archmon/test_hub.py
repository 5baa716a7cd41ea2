"""The event hub: bounded per-subscriber queues, drop-oldest or latest-per-key, never blocking publishers."""

from __future__ import annotations

import threading

import pytest

from archmon.hub import Event, EventHub


def test_subscribers_get_their_kinds_in_order_with_increasing_seq() -> None:
    hub = EventHub()
    alerts = hub.subscribe(["alert"], name="alerts")
    everything = hub.subscribe(name="all")
    hub.publish("readings", (1,))
    hub.publish("alert", "a1")
    hub.publish("alert", "a2")
    got = alerts.drain()
    assert [e.data for e in got] == ["a1", "a2"]
    assert [e.kind for e in everything.drain()] == ["readings", "alert", "alert"]
    assert got[0].seq < got[1].seq


def test_a_full_queue_drops_the_oldest_and_counts_it_without_blocking_the_publisher() -> None:
    hub = EventHub()
    slow = hub.subscribe(["readings"], name="slow", maxsize=3)
    for i in range(10):
        hub.publish("readings", i)  # would hang here if publish blocked on a full queue
    assert [e.data for e in slow.drain()] == [7, 8, 9]
    assert slow.dropped == 7


def test_latest_by_keeps_the_newest_value_per_key() -> None:
    hub = EventHub()

    def sensor(event: Event) -> str:
        return str(event.data[0])

    live = hub.subscribe(["readings"], name="live", latest_by=sensor, maxsize=100)
    for value in range(5):
        hub.publish("readings", ("s1", value))
        hub.publish("readings", ("s2", value * 10))
    assert [e.data for e in live.drain()] == [("s1", 4), ("s2", 40)]


def test_get_wakes_a_waiting_consumer_and_close_releases_it() -> None:
    hub = EventHub()
    sub = hub.subscribe(["source"], name="waiter")
    got: list[object] = []

    def consume() -> None:
        while (event := sub.get(timeout=10)) is not None:
            got.append(event.data)

    thread = threading.Thread(target=consume)
    thread.start()
    hub.publish("source", "up")
    hub.publish("source", "down")
    sub.close()
    thread.join(10)
    assert not thread.is_alive()
    assert got == ["up", "down"]
    hub.publish("source", "after close")
    assert sub.drain() == []
    assert sub not in hub.subscribers()


def test_on_ready_is_called_and_a_failing_callback_does_not_reach_the_publisher() -> None:
    hub = EventHub()
    calls: list[int] = []
    hub.subscribe(["ack"], name="cb", on_ready=lambda: calls.append(1))

    def broken() -> None:
        raise RuntimeError("boom")

    hub.subscribe(["ack"], name="broken", on_ready=broken)
    hub.publish("ack", {"alert": 1})
    assert calls == [1]


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        EventHub().subscribe(["reading"])  # type: ignore[list-item]


def test_a_wake_up_subscription_keeps_the_newest_event_and_drops_nothing() -> None:
    """The notifier reads its outbox and only wants to be woken: nothing it did not read counts as dropped
    (``hub.notify.dropped`` grew for nothing with a queue of 100 nobody read)."""
    hub = EventHub()
    woken: list[int] = []
    wake = hub.subscribe(["alert"], name="notify", wake_only=True, on_ready=lambda: woken.append(1))
    queue = hub.subscribe(["alert"], name="queue", maxsize=100)
    for i in range(250):
        hub.publish("alert", i)
    assert len(woken) == 250
    assert wake.dropped == 0 and wake.pending() == 1
    assert [e.data for e in wake.drain()] == [249]
    assert queue.dropped == 150  # a real queue that overflowed still counts
