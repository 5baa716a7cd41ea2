"""Scheduled reports on the realistic month (``report_site``) with the clock injected: nothing before the month
is over (and nothing for months before the first reading), then the month's files at once, kept in the data
directory, recorded in the audit log and mailed with attachments to every recipient through a real SMTP
server on loopback (STARTTLS, AUTH); a refused send is tried again at the next run, and a second run makes
and mails nothing twice. The job itself runs on a real APScheduler scheduler."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from archmon.app.checks import check_references
from archmon.app.reports import add_report_job
from archmon.config import Config
from dashboards.reports.integrity import verify_file
from dashboards.reports.schedule import ReportSchedule, kept_reports, periods_due, reports_dir
from tests.alerts.notify.servers import SmtpServer
from tests.dashboards.report_site import TZ, at, build_site, write_config
from tests.fixtures.mosquitto import _write_certs
from tests.fixtures.waiting import wait_for

SCHEDULE = """enabled = true
formats = ["json", "csv"]
email_channel = "mail"
email_to = ["zhang", "li@example.org"]"""


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    _write_certs(tmp_path / "certs")
    monkeypatch.setenv("ARCHMON_TEST_SMTP_PW", "s3cret-pw")
    server = SmtpServer(tmp_path / "certs", {"archmon": "s3cret-pw"}).start()
    try:
        yield server
    finally:
        server.stop()


def site_with_mail(folder: Path, smtp: SmtpServer) -> Config:
    notify = f"""
[notify.channels.mail]
type = "smtp"
host = "127.0.0.1"
port = {smtp.port}
username = "archmon"
password_env = "ARCHMON_TEST_SMTP_PW"
from = "archmon@example.org"
ca_file = "{smtp.ca_file}"
[[notify.contacts]]
name = "zhang"
email = "zhang@example.org"
[[notify.routes]]
name = "all"
levels = [{{ contacts = ["zhang"], channels = ["mail"] }}]
"""
    return build_site(folder, schedule=SCHEDULE, extra=notify)


def test_periods_due_are_the_last_ended_months_weeks_and_quarters() -> None:
    now = dt.datetime(2025, 4, 1, 3, 0, tzinfo=TZ)
    months = periods_due("monthly", now, after_h=2, catch_up=3)
    assert [(p.label, str(p.from_date), str(p.to_date)) for p in months] == [
        ("2025-01", "2025-01-01", "2025-01-31"), ("2025-02", "2025-02-01", "2025-02-28"),
        ("2025-03", "2025-03-01", "2025-03-31")]
    assert periods_due("monthly", dt.datetime(2025, 4, 1, 1, 0, tzinfo=TZ), after_h=2, catch_up=1)[0].label == "2025-02"
    weeks = periods_due("weekly", dt.datetime(2025, 3, 19, 12, tzinfo=TZ), after_h=2, catch_up=2)  # a Wednesday
    assert [(p.label, str(p.from_date), str(p.to_date)) for p in weeks] == [
        ("2025-W10", "2025-03-03", "2025-03-09"), ("2025-W11", "2025-03-10", "2025-03-16")]
    (quarter,) = periods_due("quarterly", now, after_h=2, catch_up=1)
    assert (quarter.label, str(quarter.from_date), str(quarter.to_date)) == ("2025-Q1", "2025-01-01", "2025-03-31")
    (january,) = periods_due("monthly", dt.datetime(2025, 1, 5, tzinfo=TZ), after_h=2, catch_up=1)
    assert (january.label, str(january.to_date)) == ("2024-12", "2024-12-31")


def test_the_months_files_are_made_once_kept_recorded_and_mailed(tmp_path: Path, smtp: SmtpServer) -> None:
    config = site_with_mail(tmp_path, smtp)
    assert check_references(config, secrets=False) == []
    clock = {"now": at(31, 12)}
    schedule = ReportSchedule(config, clock=lambda: clock["now"])
    assert schedule.recipients == ["zhang@example.org", "li@example.org"]
    assert schedule.tick() == []  # March is not over; February ended before the first reading
    clock["now"] = at(31, 23) + 2 * 3_600_000  # 1 April 01:00: within after_h = 2
    assert schedule.tick() == []
    assert not reports_dir(config).exists()

    smtp.refuse_sender = True  # the mail server refuses: the files are made, the mail waits
    clock["now"] = at(31, 23) + 4 * 3_600_000
    made = schedule.tick()
    assert sorted(p.name for p in made) == ["register-2025-03-zh.pdf", "report-2025-03-zh.csv",
                                            "report-2025-03-zh.json"]
    assert all(p.parent == reports_dir(config) / "2025-03" for p in made)
    assert smtp.received == [] and schedule.failures == 2
    db = config.resolve(config.storage.sqlite_path)
    for path in made:
        result = verify_file(db, path.read_bytes())
        assert result.ok and result.records[0].by == "archmon"
        assert (result.records[0].from_date, result.records[0].to_date) == (dt.date(2025, 3, 1), dt.date(2025, 3, 31))
    assert not any(p.name.startswith(".") for p in (reports_dir(config) / "2025-03").iterdir())

    smtp.refuse_sender = False
    assert schedule.tick() == []  # nothing made twice; the mail goes now
    mails = smtp.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in mails) == ["li@example.org", "zhang@example.org"]
    for mail in mails:
        assert "2025-03" in str(mail.message["Subject"]) and mail.tls and mail.authenticated_as == "archmon"
        parts = {part.get_filename(): part.get_content() for part in mail.message.iter_attachments()}
        assert set(parts) == {p.name for p in made}
        assert parts["register-2025-03-zh.pdf"] == (reports_dir(config) / "2025-03" / "register-2025-03-zh.pdf"
                                                    ).read_bytes()
    assert schedule.tick() == [] and len(smtp.received) == 2  # mailed once
    listed = kept_reports(reports_dir(config))
    assert [(k.period, k.name) for k in listed] == [("2025-03", p) for p in sorted(p.name for p in made)]


def test_the_job_runs_on_the_services_scheduler_with_the_clock_injected(tmp_path: Path) -> None:
    config = build_site(tmp_path, schedule='enabled = true\nformats = ["json"]\nregisters = false\nperiods = '
                                          '["monthly", "weekly"]')
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start()
    try:
        add_report_job(scheduler, lambda: config, clock=lambda: at(31, 23) + 4 * 3_600_000, first_run_s=0)
        folder = reports_dir(config)
        expected = {"2025-03/report-2025-03-zh.json", "2025-W13/report-2025-W13-zh.json",
                    "2025-W12/report-2025-W12-zh.json", "2025-W11/report-2025-W11-zh.json"}
        wait_for(lambda: {f"{k.period}/{k.name}" for k in kept_reports(folder)} >= expected,
                 "the scheduled job's files", timeout=120)
        assert scheduler.get_job("reports") is not None
    finally:
        scheduler.shutdown(wait=True)
    assert {f"{k.period}/{k.name}" for k in kept_reports(folder)} == expected  # the last catch_up = 3 weeks


def test_check_config_names_a_bad_schedule(tmp_path: Path) -> None:
    from dashboards.reports.settings import check_config

    config = write_config(tmp_path, schedule='enabled = true\nemail_channel = "nope"\nemail_to = ["x@example.org"]\n'
                                              'rooms = ["A9"]')
    assert check_config(config) == ["reports.schedule.rooms: unknown room(s) ['A9'] (rooms: ['A1', 'A2', 'OUT'])"]
    config = write_config(tmp_path, schedule='email_channel = "nope"\nemail_to = ["x@example.org"]')
    assert "'nope' is not an smtp channel" in check_config(config)[0]
    config = write_config(tmp_path, schedule='email_channel = "nope"\nemail_to = ["nobody"]')
    assert "neither a contact" in check_config(config)[0]
