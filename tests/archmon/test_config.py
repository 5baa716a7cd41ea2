"""Configuration: samples validate, errors name file, key path and bad value, secrets stay out of files."""

from __future__ import annotations

from pathlib import Path

import pytest

from archmon.app import check_references
from archmon.cli import main
from archmon.config import load_config, parse_config
from archmon.errors import ConfigError
from collector.mqtt_config import MqttSourceConfig
from collector.sources import configs_of

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = """
[site]
name = "t"
[[rooms]]
id = "paper"
[[mqtt]]
id = "b"
[[sensors]]
id = "th1"
room = "paper"
source = "b"
topic = "zigbee2mqtt/th1"
format = "zigbee2mqtt"
"""


def test_full_sample_config_validates() -> None:
    config = load_config(ROOT / "docs" / "archmon.sample.toml")
    assert {s.id for s in config.sensors} >= {"paper-th-1", "film-th", "film-door"}
    assert config.sensors[0].calibration["temperature"].offset == -0.2


def test_full_sample_uses_every_source_kind_in_both_forms() -> None:
    config = load_config(ROOT / "docs" / "archmon.sample.toml")
    assert check_references(config) == []
    forms = {(t.kind, t.form) for t in config.sources}
    assert {kind for kind, _ in forms} == {"mqtt", "modbus", "line"}
    assert {form for _, form in forms} == {"sources"}  # the older [[mqtt]]/[[serial]] form is only described


def test_error_names_file_key_path_and_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace('room = "paper"', 'room = "paper"\nexpected_interval_s = "often"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.problems
    assert str(path) in line and "sensors[0] (th1).expected_interval_s" in line and "'often'" in line


def test_unknown_reference_and_unknown_option_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace('source = "b"', 'source = "nope"') + "\n[storage]\nbogus = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "storage.bogus: unknown option" in text


def test_cross_reference_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace('source = "b"', 'source = "nope"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "sensors[0] (th1).source: unknown source 'nope'" in str(info.value)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[site\nname=1")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(path)


def test_password_comes_from_environment_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    config = parse_config({"mqtt": [{"id": "a", "password_env": "T_ARCHMON_PW"}],
                           "sources": [{"kind": "mqtt", "id": "b", "password_file": str(secret)}]})
    by_id = {m.id: m for m in configs_of(config, MqttSourceConfig)}
    monkeypatch.setenv("T_ARCHMON_PW", "from-env")
    assert by_id["a"].password() == "from-env"
    assert by_id["b"].password() == "s3cret"
    monkeypatch.delenv("T_ARCHMON_PW")
    with pytest.raises(ConfigError, match="T_ARCHMON_PW is not set"):
        by_id["a"].password()


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    assert main(["check-config", str(good)]) == 0
    assert "1 sensor(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace('format = "zigbee2mqtt"', 'format = "zigbee3000"'))
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sensors[0] (th1).format: unknown format 'zigbee3000'" in err and "1 problem(s)" in err


@pytest.mark.parametrize(("change", "expected"), [
    ('format = "zigbee2mqtt"', "sensors[0] (th1).options: Value error, unknown decoder option(s) ['temprature_unit']"),
    ('calibration = { temprature = { offset = 1 } }', "calibration for unknown quantity ['temprature']"),
])
def test_typos_in_options_and_calibration_are_errors(tmp_path: Path, change: str, expected: str) -> None:
    text = MINIMAL + ('options = { temprature_unit = "F" }\n' if "format" in change else change + "\n")
    path = tmp_path / "typo.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected.replace("Value error, ", "") in str(info.value)


def test_every_reference_problem_is_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "refs.toml"
    path.write_text(MINIMAL.replace('room = "paper"', 'room = "attic"').replace('source = "b"', 'source = "x"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 2
    assert all(line.startswith(str(path)) for line in info.value.problems)


def test_two_sensors_on_one_topic_are_reported(tmp_path: Path) -> None:
    twin = MINIMAL.split("[[sensors]]")[1].replace('id = "th1"', 'id = "th2"')
    path = tmp_path / "twin.toml"
    path.write_text(MINIMAL + "[[sensors]]" + twin)
    (problem,) = check_references(load_config(path))
    assert problem.startswith(f"{path}: sensors[1] (th2): same device as sensor 'th1' (source 'b', topic")


def test_short_raw_retention_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"raw_retention_days: .*at least 8 days"):
        parse_config({"storage": {"raw_retention_days": 3}})


def test_relative_secret_and_database_paths_follow_the_config_file(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret")
    path = tmp_path / "archmon.toml"
    path.write_text('[storage]\nsqlite_path = "data/a.db"\n[[mqtt]]\nid = "b"\npassword_file = "pw"\n')
    monkeypatch.chdir("/")
    config = load_config(path)
    (broker,) = configs_of(config, MqttSourceConfig)
    assert broker.password() == "s3cret"
    assert config.resolve(config.storage.sqlite_path) == tmp_path / "data" / "a.db"


def test_check_config_finds_line_and_input_module_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "serial.toml"
    path.write_text(
        '[[rooms]]\nid = "r"\n'
        '[[serial]]\nid = "bus"\ndevice = "/dev/null"\nprotocol = "modbus"\n'
        '[[serial]]\nid = "log"\ndevice = "/dev/null"\nprotocol = "line"\nline_pattern = "T=(?P<temperature>.*)"\n'
        'line_encoding = "klingon"\n'
        '[[sensors]]\nid = "door"\nroom = "r"\nkind = "door"\nsource = "bus"\naddress = 2\npreset = "di8"\n'
        '[[sensors]]\nid = "t"\nroom = "r"\nsource = "log"\n'
    )
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "serial[1] (log): line_encoding 'klingon' is not a known text encoding" in err
    assert "sensors[0] (door).channel: preset 'di8' is a digital-input module" in err
    assert "2 problem(s)" in err


def test_check_config_reports_decoder_options_of_the_wrong_type(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "opts.toml"
    path.write_text(MINIMAL.replace('format = "zigbee2mqtt"', 'format = "json"\noptions = { fields = "temperature" }'))
    assert main(["check-config", str(path)]) == 2
    assert "sensors[0] (th1).options: fields must be a table/object, got 'temperature'" in capsys.readouterr().err
