"""A real ``archmon.app.Service`` in a child process, killed with SIGKILL while its alert engine is held.

What that leaves on disk is what a crash in the middle of a long batch or a stalled judgement leaves:
readings committed, their judgement not. The child judges ``judged`` first (written, flushed, the alert feed
drained), then holds the engine's lock (its urgent lane, as a judgement does), commits ``unjudged`` and waits
to be killed. Used by the catch-up tests (``test_crash_catchup.py``, ``test_new_series_crash.py``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from archmon.app import Service
from archmon.config import load_config
from archmon.domain import Reading
from tests.archmon.sites import batch

__all__ = ["DOOR", "MIN", "commit_unjudged_then_sigkill"]

MIN = 60_000
DOOR = '[[sensors]]\nid = "door0"\nroom = "paper"\nsource = "bus"\nkind = "door"\n'  # a door contact for line_site


def _run_until_killed(path: str, judged: tuple[Reading, ...], unjudged: tuple[Reading, ...],
                      done: Connection) -> None:
    """Child: judge ``judged``, then hold the engine and commit ``unjudged``; wait to be killed."""
    service = Service(load_config(Path(path)))
    service.start()
    if judged:
        service._submit(batch(*judged))
        service.writer.flush(30)
        service._alert_feed.join(30)
    held, forever = threading.Event(), threading.Event()

    def hold_engine() -> None:
        with service.alerts._lock.urgent():
            held.set()
            forever.wait()

    threading.Thread(target=hold_engine, daemon=True).start()
    held.wait(30)
    service._submit(batch(*unjudged))
    done.send(service.writer.flush(30))
    forever.wait()


def commit_unjudged_then_sigkill(path: Path, *, judged: Sequence[Reading], unjudged: Sequence[Reading]) -> None:
    """Run the service of config ``path`` in a child, commit ``unjudged`` while its engine is held, SIGKILL it.

    Args:
        path: the site's config file (its store is the file the restarted service opens).
        judged: readings stored and judged before the engine is held (may be empty).
        unjudged: readings committed while the engine is held: stored, never judged.

    Raises:
        AssertionError: the child did not report the commit within 120 s, or did not die of the SIGKILL.
    """
    spawn = mp.get_context("spawn")
    parent, child_end = spawn.Pipe()
    child = spawn.Process(target=_run_until_killed, args=(str(path), tuple(judged), tuple(unjudged), child_end))
    child.start()
    try:
        assert parent.poll(120) and parent.recv() is True  # committed
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    assert child.exitcode == -signal.SIGKILL
