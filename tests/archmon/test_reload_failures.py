"""What a reload does when things go wrong: a step that fails after the alert rules' swap was queued takes
every part back (the engine too, in the feed's order), an unexpected error is a refusal, a refusal and an
applied reload are audited during a store stall (written once the file takes them, also by the next start),
an engine that refuses the new rules is logged and audited, and a stop wins over reloads. A real Service on
real SQLite files; failures are injected into one step of it."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from archmon.app import Service
from archmon.app.control import RunControl
from archmon.config import load_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from tests.archmon.sites import alerts, batch, line_site, service_audit
from tests.fixtures.store_stall import StoreStall
from tests.fixtures.waiting import wait_for


def _high(service: Service) -> object:
    return service.alerts.config.rooms[0].overrides["temperature"]["high"]


@pytest.mark.parametrize("failing", ["pipeline", "modbus"])
def test_a_reload_failing_after_the_swap_was_queued_leaves_every_part_on_the_running_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """``pipeline``: the step fails while the engine is busy (the queued swap is cancelled); ``modbus``: a later
    step fails after the idle engine already swapped (the old rules are swapped back, in the feed's order)."""
    extra = f'[[serial]]\nid = "mb"\ndevice = "{tmp_path / "no-bus"}"\nprotocol = "modbus"\n'
    path = line_site(tmp_path, high=30, extra=extra)
    service = Service(load_config(path))
    service.start()
    release = threading.Event()
    try:
        if failing == "pipeline":
            service._alert_feed.call("test: the engine busy with a backlog", lambda: release.wait(60))
            target, name = service.pipeline, "reconfigure"
        else:
            target, name = service.sources()["mb"], "set_devices"
        real = getattr(target, name)
        calls = [0]

        def breaks_once(*args: object) -> None:
            calls[0] += 1
            if calls[0] == 1:
                raise RuntimeError(f"{name} failed")
            real(*args)

        monkeypatch.setattr(target, name, breaks_once)
        path.write_text(path.read_text(encoding="utf-8").replace("high = 30", "high = 25"), encoding="utf-8")
        outcome = service.reload()
        release.set()
        assert service._alert_feed.join(30)
        assert not outcome.applied
        assert outcome.problems == [f"{path}: internal error: RuntimeError: {name} failed"]
        assert service.config.rooms[0].overrides["temperature"]["high"] == 30
        assert _high(service) == 30  # the engine judges by the running file, not the refused one
        # and judges by it: 27 °C is inside 30
        service._submit(batch(Reading("t0", "temperature", 27.0, now_ms(), "paper")))
        assert service.writer.flush(10) and service._alert_feed.join(30)
        assert alerts(service.db_path) == []
    finally:
        release.set()
        service.stop()
    (entry,) = service_audit(service.db_path)
    assert entry["event"] == "reload_refused" and "internal error" in str(entry["problems"])


def test_reloads_and_refusals_are_audited_during_a_store_stall_and_after_a_restart(tmp_path: Path) -> None:
    path = line_site(tmp_path, high=30, stop_timeout_s=3)
    service = Service(load_config(path))
    service.start()
    try:
        with StoreStall(service.db_path):
            path.write_text(path.read_text(encoding="utf-8").replace("high = 30", "high = 25"), encoding="utf-8")
            applied = service.reload()
            path.write_text(path.read_text(encoding="utf-8") + "[storag]\n", encoding="utf-8")
            refused = service.reload()
            assert applied.applied and not refused.applied  # neither waited for the store
            kept = [json.loads(line)["payload"]["event"] for line in
                    service.audit.spool.read_text(encoding="utf-8").splitlines()]
            assert kept == ["reload", "reload_refused"]  # on disk, before the database takes them
        wait_for(lambda: service.audit.pending() == 0, "the audit entries written once the stall ends")
        assert [e["event"] for e in service_audit(service.db_path)] == ["reload", "reload_refused"]
        assert not service.audit.spool.exists()

        with StoreStall(service.db_path):  # stalled until after the stop: the next start writes it
            path.write_text(path.read_text(encoding="utf-8").replace("[storag]\n", ""), encoding="utf-8")
            assert service.reload().applied
            report = service.stop()
    finally:
        service.stop()
    assert report.audit_pending == 1 and "1 audit entr(ies) not written yet" in report.summary()
    again = Service(load_config(path))
    try:
        wait_for(lambda: again.audit.pending() == 0, "the entry of the last run written")
    finally:
        again.stop()
    assert [e["event"] for e in service_audit(again.db_path)] == ["reload", "reload_refused", "reload"]


def test_an_entry_the_last_run_wrote_but_still_kept_is_not_written_twice(tmp_path: Path) -> None:
    path = line_site(tmp_path)
    service = Service(load_config(path))
    service.audit.submit("config", "system", "service", {"event": "reload", "path": "x"}, ts_ms=1234)
    wait_for(lambda: service.audit.pending() == 0, "written")
    service.stop()
    # a crash between the commit and removing it from the spool
    service.audit.spool.write_text(json.dumps({"ts_ms": 1234, "kind": "config", "actor": "system",
                                               "subject": "service", "payload": {"event": "reload", "path": "x"}})
                                   + "\n", encoding="utf-8")
    again = Service(load_config(path))
    try:
        wait_for(lambda: again.audit.pending() == 0, "the spool taken")
    finally:
        again.stop()
    assert service_audit(again.db_path) == [{"event": "reload", "path": "x"}]
    assert not again.audit.spool.exists()


def test_an_engine_refusing_the_new_rules_is_logged_audited_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = line_site(tmp_path, high=30)
    service = Service(load_config(path))
    service.start()
    try:
        def refuses(_config: object) -> None:
            raise ValueError("a profile the engine cannot build")

        monkeypatch.setattr(service.alerts, "reload", refuses)
        path.write_text(path.read_text(encoding="utf-8").replace("high = 30", "high = 25"), encoding="utf-8")
        assert service.reload().applied  # every other part took it
        assert service._alert_feed.join(30)
        wait_for(lambda: service.audit.pending() == 0, "the audit entries")
        service.report_stats()
        assert service.writer.flush(10)
        counters = service.store.counters()
    finally:
        service.stop()
    assert "the alert engine refused the new rules and goes on with the old ones: ValueError" in caplog.text
    assert [e["event"] for e in service_audit(service.db_path)] == ["reload", "reload_alerts_failed"]
    assert counters["service.reload_alert_failures"] == 1 and counters["service.reloads"] == 1


def test_a_reload_removing_a_sensor_with_an_open_alert_says_so(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = line_site(tmp_path, high=25, temperature=2)
    service = Service(load_config(path))
    service.start()
    try:
        service._submit(batch(Reading("t1", "temperature", 28.0, now_ms(), "paper")))
        assert service.writer.flush(10) and service._alert_feed.join(30)
        (alert,) = [a for a in service.alerts.store.alerts(active_only=True)]
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace('[[sensors]]\nid = "t1"\nroom = "paper"\nsource = "bus"\n', ""), encoding="utf-8")
        outcome = service.reload()
        wait_for(lambda: service.audit.pending() == 0, "the audit entry")
    finally:
        service.stop()
    assert outcome.applied and outcome.open_alerts_of_removed == [f"alert {alert['id']} band t1 active"]
    assert "removed sensor(s) still have open alerts" in caplog.text and f"alert {alert['id']} band t1" in caplog.text
    (entry,) = service_audit(service.db_path)
    assert entry["open_alerts_of_removed"] == [f"alert {alert['id']} band t1 active"]


def test_a_stop_wins_over_a_reload_in_progress_and_those_asked_for(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Three SIGHUPs (one reload) while a reload is in progress (it holds the reload lock), then SIGTERM: the
    stop runs at once, the reload in progress applies nothing, the one asked for never runs."""
    caplog.set_level(logging.INFO)
    path = line_site(tmp_path, high=30)
    service = Service(load_config(path))
    service.start()
    control = RunControl(service)
    result: list[object] = []
    with service._reload_lock:  # a reload in progress (reading a file, waiting for a broker...)
        path.write_text(path.read_text(encoding="utf-8").replace("high = 30", "high = 25"), encoding="utf-8")
        runner = threading.Thread(target=lambda: result.append(control.run()))
        # asked for before the reload thread runs: it must not take the first request before the other two
        # are asked for (then the second would start a reload "after the one in progress": the counts below)
        for _ in range(3):
            control.request_reload("SIGHUP")
        runner.start()
        wait_for(lambda: control._reloading, "the reload thread inside the reload (waiting for the lock)")
        control.request_stop("SIGTERM")
        runner.join(60)
        assert not runner.is_alive() and result  # the stop did not wait for the reload in progress
    control._thread.join(10)  # the reload in progress goes on now: it sees the stop
    assert control.reloads == 0
    assert service.config.rooms[0].overrides["temperature"]["high"] == 30
    # each SIGHUP said what it did; which words depends on whether the reload thread had taken the first one
    # when the second came ("after the reload in progress") or not ("already waiting"), never more than one
    started = caplog.text.count("SIGHUP: reloading the configuration")
    waiting = caplog.text.count("SIGHUP: a reload is already waiting")
    assert started + waiting == 3 and 1 <= waiting <= 2
    assert service_audit(service.db_path) == []  # nothing reloaded, nothing to audit
    control.request_reload("SIGHUP")  # during (or after) the stop: said, not done
    assert "SIGHUP: not reloading, archmon is stopping" in caplog.text
    assert service.reload().skipped  # and nothing is applied once stopping


def test_an_entry_whose_run_closed_while_it_waited_for_the_lock_is_written_once_by_the_next_run(tmp_path: Path) -> None:
    """The old run's writer was waiting for the stalled file when its stop gave up on it; the next run takes
    the entry from the spool. Whichever of the two gets the lock first, the log holds it once."""
    from archmon.app.audit import AuditQueue

    db = tmp_path / "a.db"
    Service(load_config(line_site(tmp_path))).stop()  # the file and its tables
    with StoreStall(db):
        old = AuditQueue(db)
        old.start()
        old.submit("config", "system", "service", {"event": "reload", "path": "x"})
        assert old.close(0.3) == 1  # given up on: kept in the spool
        new = AuditQueue(db)  # the next run, started while the file is still stalled
        new.start()
        assert new.pending() == 1
    wait_for(lambda: new.pending() == 0, "the next run writing it")
    assert old._thread is not None
    old._thread.join(30)  # the old writer got the lock too, after the stall, and saw it was closed
    assert not old._thread.is_alive()
    new.close(5)
    assert [e["event"] for e in service_audit(db)] == ["reload"]
