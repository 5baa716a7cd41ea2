"""How ``archmon run`` stops (SIGTERM): in order, within ``[service] stop_timeout_s``, saying what it gave up.

1. the dashboard (it must not take an adoption or an acknowledgement while the rest stops);
2. the schedules and climate control (its links disconnect; devices keep their state); serial sources stop
   reading and hand what they buffered to the writer (all at once);
3. the final flush; MQTT sources wait until every stored message is acknowledged, then disconnect;
4. the writer closes (it gives up early enough for its thread to end within the bound);
5. the alert feed judges what was stored; if it cannot finish in time, the smoke and leak readings among
   what is left are judged at once and the rest is kept for the next start (:mod:`archmon.app.feed`);
6. the notifier (after the feed: an alarm judged at the stop still gets its notification request queued),
   then the alert service, whose database is closed only if the feed's thread has ended;
7. the service's pending audit entries (what is left is written at the next start);
8. the last counters, straight to the store once the writer's thread has ended and the feed is through.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import TYPE_CHECKING

from archmon.app.feed import Backlog, save_backlog, split_urgent
from archmon.shutdown import Deadline, StopReport, run_bounded, run_step, wait_until

if TYPE_CHECKING:
    from archmon.app.service import Service

__all__ = ["stop_service"]

log = logging.getLogger("archmon.app")


def stop_service(service: Service) -> StopReport:
    """Stop ``service`` (see the module docstring); what could not be finished within the bound is given up
    and said in the log and the report: MQTT messages stay unacknowledged (the broker sends them again),
    messages read from serial devices are lost and counted (``lost_at_stop`` per source), readings stored
    but not judged are judged at the next start."""
    from archmon.app.service import STORE_BUSY_TIMEOUT_S

    service._accepting = False
    service._alert_feed.unbounded()  # the final flush never waits for the alert engine
    bound = service.config.service.stop_timeout_s
    deadline = Deadline(bound)
    tail = min(5.0, bound / 3)  # kept for acknowledgements, disconnects and what follows the flush
    writer = service.writer
    before = writer.stats()
    report = StopReport(bound, queued_at_start=before.queued_records)
    log.info("stopping within %g s: %d record(s) queued for the store", bound, before.queued_records)
    if service.dashboard is not None and not run_bounded(service.dashboard.stop, deadline.left(reserve=tail, cap=3),
                                                         "dashboard"):
        report.unfinished.append("dashboard")
    if service.scheduler.running:
        service.scheduler.shutdown(wait=False)
    if service.forwarding is not None:  # a request under way is abandoned: its rows stay queued for the next start
        service.forwarding.stop(deadline.left(reserve=tail, cap=2.0))
    control = getattr(service, "control", None)  # climate control: links disconnect, devices keep their state
    if control is not None and not run_bounded(control.stop, deadline.left(reserve=tail, cap=3), "climate control"):
        report.unfinished.append("climate control")
    if service.city is not None:  # the site says "offline" to the city while the rest stops
        service.city.stop(deadline.left(reserve=tail, cap=2.0))
    sources = service.sources()
    redelivering = {i: s for i, s in sources.items() if i in service._redelivering}
    others = {i: s for i, s in sources.items() if i not in redelivering}
    # Serial sources stop reading and hand everything they buffered to the writer, which queues it for its
    # final flush; they wait for it, all of them at once, in one shared budget.
    stoppers = {i: threading.Thread(target=s.stop, kwargs={"timeout": deadline.left(reserve=tail)},
                                    name=f"stop {i}", daemon=True) for i, s in others.items()}
    for thread in stoppers.values():
        thread.start()
    for source_id, thread in stoppers.items():
        thread.join(deadline.left(reserve=tail / 2))
        if thread.is_alive():
            report.unfinished.append(f"source {source_id}")
    if service._started:  # (a writer never started has no thread to flush; close() drains it)
        writer.flush(timeout=deadline.left(reserve=tail))
    for source_id, source in redelivering.items():
        # Wait until every stored message is acknowledged (deferred ones stay unacknowledged on purpose).
        wait_until(lambda s=source, i=source_id: s.stats().get("pending", 0) <= service._deferred[i],
                   deadline.left(reserve=tail / 2, cap=5))
        source.stop(timeout=deadline.left(reserve=tail / 2, cap=4))
        report.unacknowledged[source_id] = source.stats().get("pending", 0)
    # The writer gives up early enough for its thread to end (one busy wait) within the bound: then every
    # future it did not commit has failed, and the serial sources have counted what they lost.
    after_writer = min(3.0, bound / 4)  # the alert feed, the notifier, the alert service, the last counters
    give_up = after_writer + min(STORE_BUSY_TIMEOUT_S + 0.5, bound / 10)  # the abort ends one busy wait
    committed: list[bool] = []  # close() says whether everything submitted was committed
    finished = run_bounded(
        lambda: committed.append(writer.close(timeout=max(0.1, deadline.left(reserve=give_up)))),
        deadline.left(reserve=after_writer), "store writer")
    closed = finished and committed == [True]
    wait_until(lambda: not any(s.stats().get("buffered", 0) for s in others.values()),
               deadline.left(reserve=after_writer, cap=1.0))
    for source_id, source in others.items():
        stats = source.stats()  # still buffered now: never confirmed stored, so lost as well
        if stats.get("lost_at_stop", 0) + stats.get("buffered", 0):
            report.lost_at_stop[source_id] = stats.get("lost_at_stop", 0) + stats.get("buffered", 0)
    after = writer.stats()  # the writer's thread has ended (or been given up): nothing changes these any more
    report.stored = after.committed_readings - before.committed_readings
    report.not_committed = after.queued_records + after.abandoned_records - before.abandoned_records

    # What follows the feed takes little time unless a file is stalled: a share of the rest each, in order.
    last_steps = after_writer * 0.4
    judged = _finish_alert_feed(service, deadline, report, reserve=last_steps)
    if service.notifier is not None and not run_bounded(service.notifier.stop,
                                                        max(0.05, deadline.left(reserve=last_steps * 0.6)),
                                                        "notifier"):
        report.unfinished.append("notifier")  # what is queued stays queued, sent at the next start
    if not judged:  # its thread is still in the engine (a stalled database): closing its store would fail it
        report.unfinished.append("alert service (its database left open: the alert feed is still in it)")
    elif not run_step(service.alerts.stop, max(0.05, deadline.left(reserve=last_steps * 0.4)), "alert service"):
        report.unfinished.append("alert service")  # a locked file: one line, not a crash
    report.audit_pending = service.audit.close(max(0.05, deadline.left(reserve=last_steps * 0.2, cap=1.0)))
    # The last counters (judged readings included) go straight to the store: its writer's thread has ended.
    last = finished and run_bounded(lambda: _last_counters(service, alerts=judged), max(0.05, deadline.left()),
                                    "last counters")
    service.hub.close()  # subscribers blocked in get() see the end
    service.corrections.close()  # the sources are stopped: no reading is corrected any more
    if last:
        service.store.close()  # nothing writes any more
    if not closed:
        report.unfinished.append("store writer")
    report.elapsed_s = deadline.elapsed()
    (log.info if report.complete else log.error)("%s", report.summary())
    return report


def _last_counters(service: Service, *, alerts: bool) -> None:
    try:
        service.store.write_many([service.stats_batch(stopping=True, alerts=alerts)])
    except sqlite3.Error as exc:  # a stalled file: one line (the stop summary says the rest)
        log.warning("stopping: the last counters were not stored: %s: %s", type(exc).__name__, exc)


def _finish_alert_feed(service: Service, deadline: Deadline, report: StopReport, *, reserve: float) -> bool:
    """Let the alert feed judge what was stored, smoke and leak first when time runs short; keep the rest
    for the next start. True if the feed's thread has ended (nothing uses the alert store any more)."""
    feed = service._alert_feed
    if not feed.alive:
        return True
    rest = Backlog((), ())
    if feed.join(deadline.left(reserve=reserve * 2)):
        ended = feed.stop(max(0.05, deadline.left(reserve=reserve)))
    else:
        urgent, rest = split_urgent(feed.abandon())  # the thread ends after the item it is judging
        if urgent and run_step(lambda: service.alerts.on_readings(urgent),
                               max(0.05, deadline.left(reserve=reserve * 1.5)), "judging smoke and leak readings"):
            report.judged_urgent = len(urgent)
        elif urgent:
            rest = Backlog(tuple(urgent) + rest.readings, rest.availability)
        ended = feed.stop(max(0.05, min(0.2, deadline.left(reserve=reserve))))
    late_urgent, late = split_urgent(feed.abandon())  # what the writer handed over meanwhile (its last commits)
    rest = Backlog(rest.readings + tuple(late_urgent) + late.readings, rest.availability + late.availability)
    current = None if ended else feed.current()
    if isinstance(current, Backlog):  # the last run's backlog, not through yet: kept again
        rest = Backlog(current.readings + rest.readings, current.availability + rest.availability)
    try:
        if rest.readings or rest.availability:
            save_backlog(service.backlog_path, rest)
        elif ended:  # nothing left, the last run's backlog (if any) included
            service.backlog_path.unlink(missing_ok=True)
        report.unjudged = len(rest.readings) + len(rest.availability)
    except OSError as exc:
        log.error("stopping: %d reading(s) stored but not judged could not be kept for the next start (%s): "
                  "they will not be judged", len(rest.readings), exc)
        report.unfinished.append("alert feed (its backlog is lost)")
    if report.unjudged:
        log.warning("stopping: the alert rules did not get to %d stored reading(s) in time; kept in %s, judged "
                    "at the next start", report.unjudged, service.backlog_path)
    return ended
