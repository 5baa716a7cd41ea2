"""Reports made by ``archmon run`` on a schedule (``[reports.schedule]``): monthly (optionally weekly and
quarterly) reports and the monthly registers, kept in the data directory and e-mailed to the configured
recipients.

One idempotent step, :meth:`ReportSchedule.tick`, run hourly by APScheduler (and once shortly after the
start): every period of each kind that ended at least ``after_h`` hours ago, among the last ``catch_up``
ones, whose files are missing is made now — so a service that was stopped on the 1st makes the month when
it is back — and every made period not yet mailed to a recipient is mailed (a failed send is tried again at
the next tick). Periods that ended before the first stored reading are not made (a new installation has no
back-catalogue of empty reports). Each file's SHA-256 is in the audit log (kind ``report``), each e-mail
sent too (kind ``report_mail``).

Files: ``<data dir>/reports/<period>/report-<period>-<lang>.<fmt>`` and ``register-<period>-<lang>.pdf``,
where ``<period>`` is ``2025-03``, ``2025-W12`` or ``2025-Q1``. They are written under a temporary name and
renamed, so a file that exists is complete.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.audit import DDL, append_audit
from archmon.config import Config
from archmon.errors import ConfigError
from archmon.sqlite import connect, write_tx
from archmon.timeutil import now_ms
from dashboards.reports.produce import produce_register, produce_report
from dashboards.reports.schedule_settings import PeriodKind, ScheduleSettings
from dashboards.reports.settings import load_settings

__all__ = ["KeptReport", "ReportPeriodDue", "ReportSchedule", "kept_reports", "periods_due", "reports_dir"]

log = logging.getLogger("archmon.reports")

MAIL_KIND = "report_mail"


@dataclass(frozen=True, slots=True)
class ReportPeriodDue:
    """A period a schedule reports on: its kind, label (``2025-03``, ``2025-W12``, ``2025-Q1``) and days."""

    kind: PeriodKind
    label: str
    from_date: dt.date
    to_date: dt.date


@dataclass(frozen=True, slots=True)
class KeptReport:
    """A file kept in the reports directory (the dashboard lists these)."""

    period: str
    name: str
    path: Path
    size: int
    modified_ms: int


def _month_start(day: dt.date, back: int) -> dt.date:
    month = day.year * 12 + day.month - 1 - back
    return dt.date(month // 12, month % 12 + 1, 1)


def _period(kind: PeriodKind, start: dt.date) -> ReportPeriodDue:
    if kind == "weekly":
        year, week, _ = start.isocalendar()
        return ReportPeriodDue(kind, f"{year}-W{week:02d}", start, start + dt.timedelta(days=6))
    months = 3 if kind == "quarterly" else 1
    end = _month_start(start, -months) - dt.timedelta(days=1)
    label = f"{start.year}-Q{(start.month - 1) // 3 + 1}" if kind == "quarterly" else f"{start:%Y-%m}"
    return ReportPeriodDue(kind, label, start, end)


def periods_due(kind: PeriodKind, now: dt.datetime, *, after_h: float, catch_up: int) -> list[ReportPeriodDue]:
    """The last ``catch_up`` periods of ``kind`` that ended at least ``after_h`` hours before ``now`` (a local,
    zone-aware time), oldest first."""
    moment = now - dt.timedelta(hours=after_h)
    today = moment.date()
    if kind == "weekly":
        current = today - dt.timedelta(days=today.weekday())
        starts = [current - dt.timedelta(weeks=i) for i in range(1, catch_up + 1)]
    else:
        months = 3 if kind == "quarterly" else 1
        current = _month_start(today, (today.month - 1) % months)
        starts = [_month_start(current, months * i) for i in range(1, catch_up + 1)]
    return [_period(kind, start) for start in reversed(starts)]


def reports_dir(config: Config, settings: ScheduleSettings | None = None) -> Path:
    """Where scheduled reports are kept (``directory``, relative to the database's folder)."""
    settings = settings or load_settings(config).schedule
    db = config.resolve(config.storage.sqlite_path)
    return settings.directory if settings.directory.is_absolute() else db.parent / settings.directory


def kept_reports(folder: Path) -> list[KeptReport]:
    """Every kept file, newest period first (names sorted within a period)."""
    if not folder.is_dir():
        return []
    out = []
    for period in sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        for path in sorted(period.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                out.append(KeptReport(period.name, path.name, path, stat.st_size, int(stat.st_mtime * 1000)))
    return out


class ReportSchedule:
    """The scheduled reports of one site (see the module docstring).

    Args:
        config: the site's configuration.
        send_mail: sends one period's files to one address (``(address, subject, text, files) -> answer``,
            raising on failure); None: built from ``email_channel`` when there is one.
        clock: now, in UTC epoch ms (tests inject it).

    Raises:
        ConfigError: a bad ``[reports]`` table or an ``email_channel`` that is not an smtp channel.
    """

    def __init__(self, config: Config, *, send_mail: Callable[[str, str, str, list[Path]], str] | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.config = config
        self.settings = load_settings(config).schedule
        self.db_path = config.resolve(config.storage.sqlite_path)
        self.folder = reports_dir(config, self.settings)
        self.clock = clock
        self.recipients = self._recipients()
        self.send_mail = send_mail if send_mail is not None else self._mailer()
        self.made = 0
        self.failures = 0

    def _recipients(self) -> list[str]:
        contacts = {}
        notify = getattr(self.config, "notify", {}) or {}
        for contact in notify.get("contacts", []) if isinstance(notify, dict) else []:
            if isinstance(contact, dict) and contact.get("name") and contact.get("email"):
                contacts[str(contact["name"])] = str(contact["email"])
        out = []
        for entry in self.settings.email_to:
            address = contacts.get(entry, entry)
            if "@" not in address:
                raise ConfigError(f"reports.schedule.email_to: {entry!r} is neither a contact with an e-mail "
                                  f"address nor an address (contacts with e-mail: {sorted(contacts)})")
            out.append(address)
        return out

    def _mailer(self) -> Callable[[str, str, str, list[Path]], str] | None:
        if not self.settings.email_channel or not self.recipients:
            return None
        from dashboards.reports.mail import smtp_sender

        return smtp_sender(self.config, self.settings.email_channel)

    def _first_data_ms(self) -> int | None:
        if not self.db_path.exists():
            return None
        conn = connect(self.db_path, readonly=True)
        try:
            row = conn.execute("SELECT min(start_ms) FROM summary_hour").fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            conn.close()
        return None if row is None or row[0] is None else int(row[0])

    def _languages(self) -> list[str]:
        return list(self.settings.languages) or [self.config.site.language]

    def _files(self, period: ReportPeriodDue) -> list[tuple[str, str, str]]:
        """``(name, document, format-or-lang)`` of every file the period should have."""
        out = []
        for lang in self._languages():
            out += [(f"report-{period.label}-{lang}.{fmt}", "report", f"{fmt}:{lang}") for fmt in self.settings.formats]
            if self.settings.registers and period.kind == "monthly":
                out.append((f"register-{period.label}-{lang}.pdf", "register", f"pdf:{lang}"))
        return out

    def _make(self, period: ReportPeriodDue, name: str, document: str, spec: str, now: int) -> Path:
        fmt, _, lang = spec.partition(":")
        rooms = self.settings.rooms or None
        if document == "register":
            made = produce_register(self.config, month=period.label, rooms=rooms, lang=lang, by="archmon",
                                    now_ms=now, name=name)
        else:
            made = produce_report(self.config, from_date=period.from_date, to_date=period.to_date,
                                  fmt=fmt,  # type: ignore[arg-type]
                                  rooms=rooms, lang=lang, by="archmon", now_ms=now, name=name)
        target = self.folder / period.label / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_bytes(made.data)
        tmp.replace(target)
        log.info("reports: made %s (SHA-256 %s, audit entry #%d)", target, made.record.sha256, made.record.seq)
        return target

    def tick(self) -> list[Path]:
        """Make what is due and missing, mail what is not mailed yet; returns the files made now.

        A failure (no font, a locked database, a mail server down) is logged and tried again at the next tick;
        it never raises into the scheduler.
        """
        if not self.settings.enabled:
            return []
        now = self.clock()
        first = self._first_data_ms()
        if first is None:
            return []
        local = dt.datetime.fromtimestamp(now / 1000, self.config.site.tz)
        made: list[Path] = []
        for kind in self.settings.periods:
            for period in periods_due(kind, local, after_h=self.settings.after_h, catch_up=self.settings.catch_up):
                end_ms = dt.datetime.combine(period.to_date + dt.timedelta(days=1), dt.time(0),
                                             tzinfo=self.config.site.tz).timestamp() * 1000
                if end_ms <= first:
                    continue
                for name, document, spec in self._files(period):
                    if (self.folder / period.label / name).exists():
                        continue
                    try:
                        made.append(self._make(period, name, document, spec, now))
                        self.made += 1
                    except (ConfigError, OSError, sqlite3.Error) as exc:
                        self.failures += 1
                        log.error("reports: %s for %s not made (tried again at the next run): %s", name,
                                  period.label, exc)
                    except Exception:  # a renderer's bug must not stop the other files nor the scheduler
                        self.failures += 1
                        log.exception("reports: %s for %s not made (tried again at the next run)", name,
                                      period.label)
                self._mail(period, now)
        return made

    # -- e-mail ----------------------------------------------------------------------------------

    def _mailed(self, label: str) -> set[str]:
        conn = connect(self.db_path, readonly=True)
        try:
            rows = conn.execute("SELECT json_extract(payload, '$.to') FROM audit_log WHERE kind = ? AND subject = ?",
                                (MAIL_KIND, f"reports:{label}")).fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            conn.close()
        return {str(row[0]) for row in rows}

    def _mail(self, period: ReportPeriodDue, now: int) -> None:
        if self.send_mail is None:
            return
        files = [self.folder / period.label / name for name, _, _ in self._files(period)]
        if not all(path.exists() for path in files):
            return  # mailed once the period is complete
        for address in self.recipients:
            if address in self._mailed(period.label):
                continue
            subject, text = _mail_text(self.config, period)
            try:
                answer = self.send_mail(address, subject, text, files)
            except Exception as exc:  # the channel's own error, whatever it is: next tick again
                self.failures += 1
                log.error("reports: %s not mailed to %s (tried again at the next run): %s", period.label, address, exc)
                continue
            self._audit_mail(period.label, address, files, answer, now)

    def _audit_mail(self, label: str, address: str, files: list[Path], answer: str, now: int) -> None:
        payload: dict[str, Any] = {"to": address, "files": [p.name for p in files], "answer": answer}
        conn = connect(self.db_path, busy_timeout_s=10.0)
        try:
            with write_tx(conn):
                for statement in DDL:
                    conn.execute(statement)
                append_audit(conn, now, MAIL_KIND, "archmon", f"reports:{label}", payload)
        finally:
            conn.close()


def _mail_text(config: Config, period: ReportPeriodDue) -> tuple[str, str]:
    site = config.site.name
    if config.site.language == "zh":
        return (f"{site} 温湿度合规报告 {period.label}",
                f"{site} {period.from_date} 至 {period.to_date} 的温湿度环境合规报告（及登记表）见附件。\n"
                "各文件的 SHA-256 已记入 archmon 审计日志，可用 archmon report verify 文件名 核验。\n"
                f"Compliance report of {site} for {period.from_date}..{period.to_date} attached.")
    return (f"{site} compliance report {period.label}",
            f"The compliance report (and register) of {site} for {period.from_date}..{period.to_date} is attached.\n"
            "Each file's SHA-256 is in archmon's audit log: archmon report verify FILE checks it.")
