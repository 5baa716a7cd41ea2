"""End to end with ``archmon run`` as a real child process: a smoke reading published to Mosquitto becomes an
SMS at the modem simulator (on a real pty pair) and an e-mail at a real SMTP server; unacknowledged it
escalates on a short real schedule; SIGKILL with deliveries queued, then a restart, delivers each once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from archmon.paho import stop_network_loop
from devices.simulators.gsm_modem import GsmModemSimulator
from devices.simulators.pty_pair import PtyPair
from tests.alerts.notify.servers import SmtpServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.serial, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def _config(folder: Path, broker: int, modem: str, smtp: SmtpServer, *, smokes: int = 1, extra_alerts: str = "",
            retry: str = "") -> Path:
    sensors = "".join(
        f'[[sensors]]\nid = "smoke{i}"\nroom = "A1"\nkind = "smoke"\nsource = "b"\ntopic = "zigbee2mqtt/smoke{i}"\n'
        f'format = "zigbee2mqtt"\n' for i in range(smokes))
    path = folder / "archmon.toml"
    path.write_text(f'''
[site]
name = "市档案馆"
[storage]
sqlite_path = "{folder / 'archmon.db'}"
[[rooms]]
id = "A1"
name_zh = "一号库房"
[[mqtt]]
id = "b"
port = {broker}
client_id = "archmon-e2e"
{sensors}
[alerts]
tick_s = 0.2
[alerts.rules.stale]
enabled = false
[alerts.notify]
repeat_s = {{ critical = 0 }}
{extra_alerts}
[notify]
poll_s = 0.1
{retry}
[notify.channels.modem]
type = "gsm_modem"
port = "{modem}"
command_timeout_s = 1.0
send_timeout_s = 2.0
reopen_after_s = 0.2
inbox_poll_s = 0.5
[notify.channels.mail]
type = "smtp"
host = "127.0.0.1"
port = {smtp.port}
username = "archmon"
password_env = "ARCHMON_TEST_SMTP_PW"
from = "archmon@example.org"
ca_file = "{smtp.ca_file}"
timeout_s = 5
[[notify.contacts]]
name = "zhang"
display = "张三"
phone = "+8613800000001"
email = "zhang@example.org"
[[notify.contacts]]
name = "li"
phone = "+8613800000002"
email = "li@example.org"
[[notify.routes]]
name = "all"
levels = [{{ contacts = ["zhang"], channels = ["modem", "mail"] }},
          {{ contacts = ["li"], channels = ["modem", "mail"] }}]
''', encoding="utf-8")
    return path


class Run:
    """``archmon run`` in a child process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "archmon", "run", "--config", str(self.config)],
                                         stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1",
                                              "ARCHMON_TEST_SMTP_PW": "s3cret-pw"})
        wait_for(lambda: b"notifier started" in self.log.read_bytes()[offset:] or self.proc.poll() is not None,
                 "archmon run to start its notifier", timeout=60)
        assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)
            self.proc.wait(timeout=60)
        self.proc = None


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-pub")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        stop_network_loop(client)
        client.disconnect()


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def test_smoke_over_mqtt_reaches_sms_and_email_and_escalates_on_schedule(
        tmp_path: Path, mosquitto: MosquittoBroker, pty_pair: PtyPair, smtp_server: SmtpServer) -> None:
    config = _config(tmp_path, mosquitto.port, pty_pair.a, smtp_server, extra_alerts="escalation_after_s = [4]")
    run = Run(config, tmp_path / "run.log")
    with GsmModemSimulator(pty_pair.b) as modem:
        run.start()
        try:
            _publish(mosquitto.port, [("zigbee2mqtt/smoke0", b'{"smoke": false}'),
                                      ("zigbee2mqtt/smoke0", b'{"smoke": true}')])
            wait_for(lambda: len(modem.texts_sent()) >= 1, "the smoke SMS", 30)
            [(number, text)] = modem.texts_sent()
            assert number == "+8613800000001" and text.startswith("【告警·紧急】#1 一号库房 smoke0：检测到烟雾！")
            [mail] = smtp_server.wait_for(1)
            assert mail.rcpt_tos == ["zhang@example.org"] and "检测到烟雾" in str(mail.message["Subject"])
            wait_for(lambda: len(modem.texts_sent()) >= 2, "the escalation SMS (4 s later, nobody acknowledged)", 30)
            assert modem.texts_sent()[1][0] == "+8613800000002"
            assert "已升级至第 2 级" in modem.texts_sent()[1][1]
            mails = smtp_server.wait_for(2)
            assert mails[1].rcpt_tos == ["li@example.org"]
            escalated = _rows(tmp_path / "archmon.db",
                              "SELECT created_ms - (SELECT created_ms FROM notification_queue WHERE id = 1) "
                              "FROM notification_queue WHERE transition = 'escalate'")
            assert escalated == [(4000,)]  # stamped with its due time: exactly escalation_after_s after firing
        finally:
            run.stop()


def test_sigkill_with_deliveries_queued_then_restart_delivers_each_once(
        tmp_path: Path, mosquitto: MosquittoBroker, pty_pair: PtyPair, certs: Path) -> None:
    smtp = SmtpServer(certs, {"archmon": "s3cret-pw"})  # not started yet: every e-mail waits in the outbox
    config = _config(tmp_path, mosquitto.port, pty_pair.a, smtp, smokes=3, retry="retry = { backoff_s = [0.5] }",
                     extra_alerts="escalate = []")
    db = tmp_path / "archmon.db"
    run = Run(config, tmp_path / "run.log")
    with GsmModemSimulator(pty_pair.b) as modem:
        modem.set_failure("cms_error", code=500)  # the network refuses every SMS for now
        run.start()
        try:
            _publish(mosquitto.port, [(f"zigbee2mqtt/smoke{i}", p) for i in range(3)
                                      for p in (b'{"smoke": false}', b'{"smoke": true}')])
            wait_for(lambda: len(_rows(db, "SELECT id FROM notify_deliveries WHERE attempts >= 2")) == 6,
                     "6 deliveries (3 SMS, 3 e-mails) tried and queued for retry", timeout=60)
        finally:
            run.stop(signal.SIGKILL)  # a crash with everything queued
        assert modem.sent == []
        in_flight = len(_rows(db, "SELECT id FROM notify_attempts WHERE outcome = 'started'"))
        modem.set_failure("none")
        smtp.start()
        try:
            run.start()
            try:
                wait_for(lambda: len(_rows(db, "SELECT id FROM notify_deliveries WHERE status = 'sent' "
                                               "AND alert_id <= 3")) == 6,
                         "every delivery sent after the restart", timeout=60)
                smtp.wait_for(3)
                # a little longer: nothing more may come
                wait_for(lambda: len(_rows(db, "SELECT id FROM notify_attempts WHERE outcome = 'started'")) == 0,
                         "no attempt in flight", timeout=10)
            finally:
                run.stop()
            # the modem kept failing before the crash, so a "channel down" alert (#4) went out by e-mail too
            texts = [t for _, t in modem.texts_sent() if "检测到烟雾" in t]
            per_alert = Counter(t.split(" ")[0].split("#")[1] for t in texts)
            assert per_alert == Counter({"1": 1, "2": 1, "3": 1}), texts
            subjects = [str(m.message["Subject"]) for m in smtp.received]
            mails = Counter(s.split("#")[1].split(" ")[0] for s in subjects if "检测到烟雾" in s)
            assert mails == Counter({"1": 1, "2": 1, "3": 1}), subjects
            # what was in flight at the kill is marked (its provider may have taken it), and only that
            assert _rows(db, "SELECT COUNT(*) FROM notify_deliveries WHERE possible_duplicate = 1") == [(in_flight,)]
            assert _rows(db, "SELECT COUNT(*) FROM notify_attempts WHERE outcome = 'interrupted'") == [(in_flight,)]
            assert _rows(db, "SELECT status, COUNT(*) FROM notification_queue WHERE alert_id <= 3 GROUP BY status") == [
                ("sent", 3)]
        finally:
            smtp.stop()
