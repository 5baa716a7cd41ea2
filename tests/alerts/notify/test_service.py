"""The notifier inside ``archmon run`` (a real child process) against a real loopback webhook: a SIGKILL in the
middle of a send costs one marked copy of that message and nothing else; SIGHUP changes where messages go."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from alerts.store import AlertStore
from tests.alerts.notify.servers import HttpRequest, ProviderServer
from tests.alerts.notify.test_end_to_end import Run, _rows
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow


def _config(folder: Path, url: str, *, contacts: tuple[str, ...] = ("zhang", "li")) -> Path:
    people = "".join(f'[[notify.contacts]]\nname = "{name}"\nphone = "+861380000000{i + 1}"\n'
                     for i, name in enumerate(contacts))
    path = folder / "archmon.toml"
    path.write_text(f'''
[site]
name = "市档案馆"
[storage]
sqlite_path = "{folder / 'archmon.db'}"
[[rooms]]
id = "A1"
name_zh = "一号库房"
[notify]
poll_s = 0.1
group_window_s = 0
retry = {{ backoff_s = [0.5] }}
[notify.channels.hook]
type = "webhook"
url = "{url}/hook"
timeout_s = 30
{people}
[[notify.routes]]
name = "all"
levels = [{{ contacts = {list(contacts)!r}, channels = ["hook"] }}]
'''.replace("'", '"'), encoding="utf-8")
    return path


def _smoke(db: Path, sensors: list[str]) -> None:
    store = AlertStore(db)
    try:
        for i, sensor in enumerate(sensors, start=1):
            store.enqueue_notification(i, "fired", "critical", "critical/A1", 0, int(time.time() * 1000),
                                       {"rule": "smoke", "room": "A1", "sensor": sensor,
                                        "ts": "2024-03-04T12:00:00+08:00"})
    finally:
        store.close()


def test_sigkill_in_the_middle_of_a_send_costs_one_marked_copy_of_that_message_only(tmp_path: Path) -> None:
    entered: list[HttpRequest] = []
    lock, hold, release = threading.Lock(), threading.Event(), threading.Event()

    def answer(request: HttpRequest) -> tuple[int, dict]:
        with lock:
            entered.append(request)
            third = len(entered) == 3
        if third:  # the third message is at the provider, unanswered, when archmon is killed
            hold.set()
            release.wait(30)
        return 200, {"errcode": 0}

    provider = ProviderServer(answer=answer).start()
    config = _config(tmp_path, provider.url)
    run = Run(config, tmp_path / "run.log")
    sensors = [f"S{i}" for i in range(1, 6)]
    try:
        run.start()
        _smoke(tmp_path / "archmon.db", sensors)
        assert hold.wait(30), "the third message never reached the provider"
        run.stop(signal.SIGKILL)  # a crash during the send: the provider has it, archmon never heard back
        release.set()
        in_flight = entered[2].json()["alerts"][0]["sensor"]
        run.start()
        wait_for(lambda: Counter(r.json()["alerts"][0]["sensor"] for r in entered).keys() >= set(sensors),
                 "every smoke alarm delivered after the restart", timeout=60)
        wait_for(lambda: not _rows(tmp_path / "archmon.db", "SELECT id FROM notification_queue "
                                                            "WHERE status != 'sent'"), "every request settled", 30)
    finally:
        run.stop()
        release.set()
        provider.stop()
    per_sensor = Counter(r.json()["alerts"][0]["sensor"] for r in entered)
    assert per_sensor == Counter({s: 2 if s == in_flight else 1 for s in sensors})
    marked = [r.json()["alerts"][0]["sensor"] for r in entered if r.json()["possible_duplicate"]]
    assert marked == [in_flight]  # only the copy sent again after the crash says so
    assert _rows(tmp_path / "archmon.db", "SELECT COUNT(*) FROM notify_attempts WHERE outcome = 'interrupted'") == [
        (1,)]


def test_sighup_changes_where_messages_go_and_who_may_acknowledge(tmp_path: Path) -> None:
    old, new = ProviderServer().start(), ProviderServer().start()
    config = _config(tmp_path, old.url)
    run = Run(config, tmp_path / "run.log")
    try:
        run.start()
        _config(tmp_path, new.url, contacts=("zhang",))
        offset = (tmp_path / "run.log").stat().st_size
        assert run.proc is not None
        run.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"notify: reloaded" in (tmp_path / "run.log").read_bytes()[offset:], "the reload", 30)
        _smoke(tmp_path / "archmon.db", ["S1"])
        new.wait_for(1)
        body = new.requests[0].json()
        assert body["alerts"][0]["sensor"] == "S1"
    finally:
        run.stop()
        old.stop()
        new.stop()
    assert old.requests == []
    log = (tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")
    assert "1 contacts" in log.split("notify: reloaded", 1)[1].splitlines()[0]
