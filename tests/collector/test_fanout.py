"""ConsumerThread: order, back-pressure instead of loss, failures contained."""

from __future__ import annotations

import threading

from collector.fanout import ConsumerThread


def test_items_are_consumed_in_order_and_a_failure_does_not_stop_the_thread() -> None:
    seen: list[int] = []

    def consume(item: int) -> None:
        if item == 3:
            raise RuntimeError("boom")
        seen.append(item)

    thread: ConsumerThread[int] = ConsumerThread(consume, name="t")
    thread.start()
    for i in range(10):
        thread.submit(i)
    assert thread.join(5)
    thread.stop()
    assert seen == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert thread.errors == 1 and thread.handled == 9


def test_a_full_queue_blocks_the_producer_instead_of_dropping() -> None:
    gate = threading.Event()
    seen: list[int] = []
    thread: ConsumerThread[int] = ConsumerThread(lambda i: (gate.wait(5), seen.append(i)), name="t", max_items=2)
    thread.start()
    producer_done = threading.Event()

    def produce() -> None:
        for i in range(6):
            thread.submit(i)
        producer_done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not producer_done.wait(0.3)  # blocked: 1 item in the consumer, 2 queued, the rest waiting
    gate.set()
    assert producer_done.wait(5)
    assert thread.join(5)
    thread.stop()
    assert seen == list(range(6))
