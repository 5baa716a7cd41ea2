"""``archmon notify test | log | channels`` and the channels in ``archmon status``."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.cli import main
from tests.alerts.notify.harness import ZHANG, Site
from tests.alerts.notify.servers import ProviderServer, SmtpServer


def _write(tmp_path: Path, notify_toml: str) -> Path:
    path = tmp_path / "archmon.toml"
    path.write_text(f'[site]\nname = "市档案馆"\n[storage]\nsqlite_path = "{tmp_path / "archmon.db"}"\n'
                    f'[[rooms]]\nid = "A1"\n{notify_toml}', encoding="utf-8")
    return path


def _mail_toml(server: SmtpServer) -> str:
    return (f'[notify.channels.mail]\ntype = "smtp"\nhost = "127.0.0.1"\nport = {server.port}\nusername = "archmon"\n'
            f'password_env = "ARCHMON_TEST_SMTP_PW"\nfrom = "archmon@example.org"\nca_file = "{server.ca_file}"\n'
            f'[[notify.contacts]]\nname = "zhang"\nemail = "zhang@example.org"\n'
            f'[[notify.routes]]\nname = "all"\nlevels = [{{ contacts = ["zhang"], channels = ["mail"] }}]\n')


def test_notify_test_sends_now_prints_the_answer_and_logs_it(tmp_path: Path, smtp_server: SmtpServer,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, _mail_toml(smtp_server))
    monkeypatch.setenv("ARCHMON_TEST_SMTP_PW", "s3cret-pw")
    code = main(["notify", "test", "--channel", "mail", "--to", "zhang", "--text", "值班测试", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mail (smtp) → zhang@example.org: accepted" in out and "provider answer: 250 2.0.0 Ok" in out
    [mail] = smtp_server.wait_for(1)
    assert mail.message.get_body(("plain",)).get_content().strip() == "值班测试"
    monkeypatch.setenv("ARCHMON_TEST_SMTP_PW", "wrong")
    assert main(["notify", "test", "--channel", "mail", "--to", "a@example.org", "--config", str(config)]) == 1
    assert "authentication refused: 535" in capsys.readouterr().out
    assert main(["notify", "log", "--format", "json", "--config", str(config)]) == 0
    log = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["status"], r["attempts_list"][0]["outcome"]) for r in log] == [
        ("test", "failed", "failed"), ("test", "sent", "accepted")]
    assert "s3cret" not in json.dumps(log) and "wrong" not in json.dumps(log)
    assert main(["notify", "test", "--channel", "nope", "--to", "x", "--config", str(config)]) == 2


def test_notify_log_for_one_alert_and_channels_with_modem_state(
        tmp_path: Path, provider: ProviderServer, capsys: pytest.CaptureFixture[str]) -> None:
    notify = {"group_window_s": 0, "channels": {"hook": {"type": "webhook", "url": f"{provider.url}/h"}},
              "contacts": [ZHANG],
              "routes": [{"name": "all", "levels": [{"contacts": ["zhang"], "channels": ["hook"]}]}]}
    site = Site(tmp_path, notify)
    try:
        site.reading("S1", "smoke", 1.0)
        site.step()
        provider.answer = lambda r: (500, "down")
        site.reading("T1", "humidity", 90.0)
        site.at(3600)
        site.step()
    finally:
        site.close()
    path = tmp_path / "archmon.toml"
    path.write_text(f'[site]\nname = "x"\n[storage]\nsqlite_path = "{site.db}"\n[[rooms]]\nid = "A1"\n'
                    f'[[rooms]]\nid = "A2"\n[[rooms]]\nid = "A3"\n'
                    f'[notify.channels.hook]\ntype = "webhook"\nurl = "{provider.url}/h"\n'
                    f'[[notify.contacts]]\nname = "zhang"\nphone = "+8613800000001"\n'
                    f'[[notify.routes]]\nname = "all"\nlevels = [{{ contacts = ["zhang"], channels = ["hook"] }}]\n',
                    encoding="utf-8")
    assert main(["notify", "log", "--alert", "1", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\n#1 alert 1 fired level 0 hook → hook: sent (route all, attempts 1)\n" in out
    assert "12:00 +08:00 accepted: HTTP 200" in out and "13:00 +08:00 failed: HTTP 500 down, next try" in out
    assert "alert 2" not in out
    assert main(["notify", "channels", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hook (webhook): failing; last success 2024-03-04 12:00 +08:00")
    assert "last error: HTTP 500 down" in out


def test_status_shows_each_channel(tmp_path: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, _mail_toml(smtp_server))
    from collector.store import SqliteStore

    SqliteStore(tmp_path / "archmon.db", tz=ZoneInfo("Asia/Shanghai")).close()
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "notification channels:\n  mail (smtp): unknown; last success -, last failure -" in out


@pytest.mark.serial
def test_notify_test_through_the_modem(tmp_path: Path, pty_pair, capsys: pytest.CaptureFixture[str]) -> None:
    from devices.simulators.gsm_modem import GsmModemSimulator

    config = _write(tmp_path, f'[notify.channels.modem]\ntype = "gsm_modem"\nport = "{pty_pair.a}"\n'
                              f'[[notify.contacts]]\nname = "zhang"\nphone = "+8613800000001"\n'
                              f'[[notify.routes]]\nname = "all"\nlevels = [{{ contacts = ["zhang"], channels = '
                              f'["modem"] }}]\n')
    with GsmModemSimulator(pty_pair.b) as modem:
        assert main(["notify", "test", "--channel", "modem", "--to", "zhang", "--config", str(config)]) == 0
        assert "provider answer: +CMGS: 1" in capsys.readouterr().out
        assert modem.texts_sent() == [("+8613800000001", "archmon 测试消息：市档案馆 的通道 modem 工作正常。")]
        modem.set_failure("no_network")
        assert main(["notify", "test", "--channel", "modem", "--to", "+8613800000002", "--config", str(config)]) == 1
        assert "+CMS ERROR: 331 (no network service)" in capsys.readouterr().out
