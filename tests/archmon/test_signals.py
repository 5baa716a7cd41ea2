"""Signals of ``archmon run`` (a separate process on a real Mosquitto, a real notify socket): a SIGTERM is
obeyed within the bound whatever reloads are doing (a store stall, a storm of SIGHUPs, a backlog the engine
is judging); systemd hears STOPPING at once and no READY after it; every reload applied is audited once,
also those done during a stall (written by the next start); nothing is applied once stopping."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.archmon.operations import NotifySocket, running, stop_seconds
from tests.archmon.test_operations import StoreStaller, publish_backlog, reloads, site, stored
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def _after(log: str, marker: str) -> str:
    return log.split(marker, 1)[1] if marker in log else ""


def _from_stopping(notify: NotifySocket) -> list[dict[str, str]]:
    """What archmon told systemd from STOPPING on (read once it has exited)."""
    while "STOPPING" not in (message := notify.next(30)):
        pass
    after = [message]
    try:
        while True:
            after.append(notify.next(0.5))
    except TimeoutError:
        return after


def test_sigterm_after_reloads_on_a_stalled_store_stops_within_the_bound(
    tmp_path: Path, mosquitto: MosquittoBroker, notify: NotifySocket
) -> None:
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    bound = 4
    config.write_text(site(mosquitto.port, high=65, stop_timeout_s=bound), encoding="utf-8")
    with running(config, tmp_path / "run1.log", env={"NOTIFY_SOCKET": notify.name}) as archmon:
        assert notify.next().get("READY") == "1"
        archmon.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
        config.write_text(site(mosquitto.port, high=55, stop_timeout_s=bound), encoding="utf-8")
        staller = StoreStaller(db)
        try:
            for n in range(1, 4):
                archmon.signal(signal.SIGHUP)
                wait_for(lambda n=n: archmon.log().count("archmon.app: reloaded ") == n, f"reload {n} done")
            archmon.signal(signal.SIGTERM)
            code = archmon.wait(bound + 15)
        finally:
            staller.release()
        log = archmon.log()
    assert code == 1  # the stall outlasted the stop: said, and the exit code says it
    assert stop_seconds(log) <= bound + 1, log[-3000:]
    assert "3 audit entr(ies) not written yet (kept, written at the next start)" in log
    with running(config, tmp_path / "run2.log") as archmon:  # the next start writes them
        wait_for(lambda: len(reloads(db)) == 3, "the reloads of the last run audited")
        archmon.signal(signal.SIGTERM)
        assert archmon.wait(30) == 0
    assert [entry["event"] for entry in reloads(db)] == ["reload", "reload", "reload"]


def test_a_storm_of_sighups_during_a_backlog_then_sigterm(
    tmp_path: Path, mosquitto_factory: object, notify: NotifySocket
) -> None:
    broker = mosquitto_factory(max_inflight_messages=0)  # type: ignore[operator]
    config = tmp_path / "archmon.toml"
    db = tmp_path / "archmon.db"
    bound = 5
    config.write_text(site(broker.port, high=65, stop_timeout_s=bound), encoding="utf-8")
    with running(config, tmp_path / "run1.log") as archmon:  # the persistent session
        archmon.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
        archmon.signal(signal.SIGTERM)
        assert archmon.wait(30) == 0
    publish_backlog(broker, range(5000))
    config.write_text(site(broker.port, high=55, stop_timeout_s=bound), encoding="utf-8")
    with running(config, tmp_path / "run2.log", env={"NOTIFY_SOCKET": notify.name}) as archmon:
        assert notify.next().get("READY") == "1"
        wait_for(lambda: len(stored(db, "th", "temperature")) > 500, "the backlog flowing")
        for _ in range(10):
            archmon.signal(signal.SIGHUP)
        archmon.signal(signal.SIGTERM)
        code = archmon.wait(bound + 15)
        log = archmon.log()
        from_stopping = _from_stopping(notify)
    assert code in (0, 1), log[-3000:]
    assert stop_seconds(log) <= bound + 1, log[-3000:]
    asked = log.count("SIGHUP: reloading the configuration")
    collapsed = log.count("SIGHUP: a reload is already waiting")
    # (the kernel merges a SIGHUP sent before the last one was handled: at most 10 are seen)
    assert asked >= 1 and asked + collapsed <= 10
    applied = log.count("archmon.app: reloaded ")
    assert applied <= asked
    stopping = _after(log, ": SIGTERM: stopping")
    assert "archmon.app: reloaded " not in stopping  # nothing applied once stopping
    # told by the signal handler itself (the stop's own work has nothing more to say to systemd) ...
    assert from_stopping[0] == {"STOPPING": "1", "STATUS": f"stopping within {bound} s",
                                "EXTEND_TIMEOUT_USEC": str((bound + 5) * 1_000_000)}
    assert not any(m.get("READY") == "1" for m in from_stopping)  # ... and a reload cut short says nothing
    entries = [e for e in reloads(db) if e["event"] == "reload"]
    assert len(entries) == applied or "audit entr(ies) not written yet" in log  # each audited once
