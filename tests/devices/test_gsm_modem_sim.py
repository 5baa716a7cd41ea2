"""The GSM modem simulator answers like a 27.005/27.007 modem, byte for byte, on a real pty pair."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from archmon.sms_pdu import decode_deliver, encode_submit
from devices.simulators.gsm_modem import GsmModemSimulator
from devices.simulators.pty_pair import PtyPair

pytestmark = pytest.mark.serial


@pytest.fixture
def line(pty_pair: PtyPair) -> Iterator[tuple[serial.Serial, GsmModemSimulator]]:
    sim = GsmModemSimulator(pty_pair.b).start()
    port = serial.Serial(pty_pair.a, 115200, timeout=0.05)
    try:
        yield port, sim
    finally:
        port.close()
        sim.stop()


def _exchange(port: serial.Serial, data: bytes, until: bytes = b"OK\r\n", timeout: float = 5.0) -> bytes:
    port.write(data)
    out = b""
    deadline = time.monotonic() + timeout
    while until not in out and b"ERROR" not in out and time.monotonic() < deadline:
        out += port.read(256)
    if b"ERROR" in out:  # read the rest of the line
        while not out.endswith(b"\r\n") and time.monotonic() < deadline:
            out += port.read(64)
    return out


def test_echo_until_ate0_and_final_result_codes(line) -> None:
    port, _ = line
    assert _exchange(port, b"AT\r") == b"AT\r\r\nOK\r\n"  # a fresh modem echoes
    assert _exchange(port, b"ATE0\r") == b"ATE0\r\r\nOK\r\n"
    assert _exchange(port, b"AT+CPIN?\r") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert _exchange(port, b"AT+CREG?\r") == b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
    assert _exchange(port, b"AT+CSQ\r") == b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n"
    assert _exchange(port, b"AT+BOGUS\r") == b"\r\nERROR\r\n"


def test_cmgs_prompt_pdu_and_ctrl_z(line) -> None:
    port, sim = line
    _exchange(port, b"ATE0\r")
    [pdu] = encode_submit("+8613912345678", "烟雾告警")
    assert _exchange(port, f"AT+CMGS={pdu.tpdu_length}\r".encode(), until=b"> ") == b"\r\n> "
    assert _exchange(port, pdu.hex.encode() + b"\x1a") == b"\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert sim.texts_sent() == [("+8613912345678", "烟雾告警")]
    assert sim.sent[0].decoded.dcs == 0x08 and sim.sent[0].length == pdu.tpdu_length


def test_wrong_length_and_escape(line) -> None:
    port, sim = line
    _exchange(port, b"ATE0\rAT+CMEE=1\r")
    [pdu] = encode_submit("+8613912345678", "x")
    _exchange(port, f"AT+CMGS={pdu.tpdu_length + 1}\r".encode(), until=b"> ")
    assert _exchange(port, pdu.hex.encode() + b"\x1a") == b"\r\n+CMS ERROR: 304\r\n"
    _exchange(port, f"AT+CMGS={pdu.tpdu_length}\r".encode(), until=b"> ")
    assert _exchange(port, b"0011\x1b") == b"\r\nOK\r\n"  # ESC cancels the message
    assert sim.sent == []


def test_failure_modes_numeric_and_plain(line) -> None:
    port, sim = line
    _exchange(port, b"ATE0\r")
    sim.set_failure("no_sim")
    assert _exchange(port, b"AT+CPIN?\r") == b"\r\nERROR\r\n"  # AT+CMEE=0: plain ERROR
    _exchange(port, b"AT+CMEE=1\r")
    assert _exchange(port, b"AT+CPIN?\r") == b"\r\n+CME ERROR: 10\r\n"
    sim.set_failure("no_network")
    assert _exchange(port, b"AT+CREG?\r") == b"\r\n+CREG: 0,2\r\n\r\nOK\r\n"
    [pdu] = encode_submit("+8613912345678", "x")
    _exchange(port, f"AT+CMGS={pdu.tpdu_length}\r".encode(), until=b"> ")
    assert _exchange(port, pdu.hex.encode() + b"\x1a") == b"\r\n+CMS ERROR: 331\r\n"
    sim.set_failure("cms_error", code=500, count=1)
    _exchange(port, f"AT+CMGS={pdu.tpdu_length}\r".encode(), until=b"> ")
    assert _exchange(port, pdu.hex.encode() + b"\x1a") == b"\r\n+CMS ERROR: 500\r\n"
    _exchange(port, f"AT+CMGS={pdu.tpdu_length}\r".encode(), until=b"> ")
    assert _exchange(port, pdu.hex.encode() + b"\x1a").endswith(b"OK\r\n")  # the error was for one send
    sim.set_failure("silent")
    assert _exchange(port, b"AT\r", timeout=0.5) == b""


def test_incoming_message_cmti_cmgr_cmgl_cmgd(line) -> None:
    port, sim = line
    _exchange(port, b"ATE0\r")  # one command at a time: the second's OK must not be left for the URC read
    assert _exchange(port, b"AT+CNMI=2,1,0,0,0\r") == b"\r\nOK\r\n"
    [index] = sim.deliver_sms("+8613800000001", "确认 1234")
    out = b""
    deadline = time.monotonic() + 5
    while b"\r\n" not in out[2:] and time.monotonic() < deadline:
        out += port.read(64)
    assert out == f'\r\n+CMTI: "SM",{index}\r\n'.encode()
    answer = _exchange(port, f"AT+CMGR={index}\r".encode()).decode()
    lines = [x for x in answer.split("\r\n") if x]
    assert lines[0].startswith("+CMGR: 0,,") and lines[-1] == "OK"  # 0: received unread
    sms = decode_deliver(lines[1])
    assert (sms.number, sms.text) == ("+8613800000001", "确认 1234")
    listed = [x for x in _exchange(port, b"AT+CMGL=4\r").decode().split("\r\n") if x]
    assert listed[0] == f"+CMGL: {index},1,,{int(lines[0].rsplit(',', 1)[1])}" and listed[-1] == "OK"
    assert _exchange(port, f"AT+CMGD={index}\r".encode()) == b"\r\nOK\r\n"
    assert sim.stored() == {}
    assert _exchange(port, f"AT+CMGR={index}\r".encode()) == b"\r\nERROR\r\n"
    assert _exchange(port, b"AT+CMGL=4\r") == b"\r\nOK\r\n"


def test_a_failure_after_good_sends_and_an_answer_lost_after_the_pdu(line) -> None:
    port, sim = line
    _exchange(port, b"ATE0\r")
    _exchange(port, b"AT+CMEE=1\r")
    pdus = encode_submit("+8613912345678", "一号库房检测到烟雾" * 10, ref=9)  # two parts
    sim.set_failure("cms_error", code=500, count=1, after=1)
    for pdu, answer in zip(pdus, (b"\r\n+CMGS: 1\r\n\r\nOK\r\n", b"\r\n+CMS ERROR: 500\r\n"), strict=True):
        _exchange(port, f"AT+CMGS={pdu.tpdu_length}\r".encode(), until=b"> ")
        assert _exchange(port, pdu.hex.encode() + b"\x1a") == answer
    assert sim.texts_sent() == []  # part 2 never arrived: no whole message
    sim.set_failure("lost_answer", count=1)
    _exchange(port, f"AT+CMGS={pdus[1].tpdu_length}\r".encode(), until=b"> ")
    assert _exchange(port, pdus[1].hex.encode() + b"\x1a", timeout=0.5) == b""  # taken, never answered
    [whole] = sim.texts_sent()
    assert (whole.number, whole.text) == ("+8613912345678", "一号库房检测到烟雾" * 10)
    _exchange(port, f"AT+CMGS={pdus[1].tpdu_length}\r".encode(), until=b"> ")  # healthy again
    assert _exchange(port, pdus[1].hex.encode() + b"\x1a") == b"\r\n+CMGS: 3\r\n\r\nOK\r\n"
    assert len(sim.texts_sent()) == 1  # part 2 again under the same reference: still one message


def test_a_sender_name_and_late_parts(line) -> None:
    port, sim = line
    _exchange(port, b"ATE0\r")
    sim.deliver_sms("13800000001", "1", alphanumeric=True)
    sim.deliver_sms("+8613800000002", "确认 1，" + "一切正常" * 20, parts_only=(2,), ref=5)
    listing = _exchange(port, b"AT+CMGL=4\r").decode()
    pdus = [line for line in listing.split("\r\n") if line and not line.startswith(("+CMGL", "OK"))]
    first, late = (decode_deliver(p) for p in pdus)
    assert (first.number, first.number_type) == ("13800000001", "alphanumeric")
    assert late.concat is not None and (late.concat.ref, late.concat.seq, late.concat.total) == (5, 2, 2)
