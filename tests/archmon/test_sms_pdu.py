"""SMS PDU codec: published vectors, the GSM alphabet and its extension table, UCS2, concatenation."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archmon.sms_pdu import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Concat,
    decode_deliver,
    decode_submit,
    encode_deliver,
    encode_submit,
    split_text,
    validity_octet,
)

CN8 = timezone = dt.timezone(dt.timedelta(hours=8))


def test_published_submit_vector() -> None:
    # the classic SMS-SUBMIT example: "hellohello" to +46708251358, relative validity 0xAA, AT+CMGS=23
    [pdu] = encode_submit("+46708251358", "hellohello", validity=0xAA)
    assert pdu.hex == "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"
    assert pdu.tpdu_length == 23


def test_published_deliver_vector() -> None:
    sms = decode_deliver("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37")
    assert sms.text == "hellohello" and sms.number == "27838890001" and sms.alphabet == "gsm7"
    assert (sms.timestamp.month, sms.timestamp.day, sms.timestamp.hour, sms.timestamp.minute) == (3, 29, 15, 16)
    assert sms.timestamp.utcoffset() == dt.timedelta(hours=2)


def test_chinese_150_characters_is_three_ucs2_parts_numbered_in_order() -> None:
    text = ("一号库房相对湿度高于上限六十请值班人员立即处理并回复确认" * 6)[:150]
    pdus = encode_submit("+8613912345678", text, ref=0x42)
    assert len(pdus) == 3
    decoded = [decode_submit(p.hex) for p in pdus]
    assert [(d.concat.ref, d.concat.total, d.concat.seq) for d in decoded] == [(0x42, 3, 1), (0x42, 3, 2), (0x42, 3, 3)]
    assert [len(d.text) for d in decoded] == [67, 67, 16]
    assert "".join(d.text for d in decoded) == text
    first = bytes.fromhex(pdus[0].hex)
    assert first[1] == 0x51  # SMS-SUBMIT, relative validity, user-data header present
    assert pdus[0].hex[2:].startswith("5100")
    assert all(d.dcs == 0x08 and d.alphabet == "ucs2" for d in decoded)
    assert "050003420301" in pdus[0].hex  # UDH: IEI 00, length 3, ref, total, sequence


def test_seventy_chinese_characters_fit_one_message_seventy_one_do_not() -> None:
    assert len(split_text("档" * 70)[1]) == 1
    assert len(split_text("档" * 71)[1]) == 2


def test_gsm7_limits_and_the_extension_table() -> None:
    assert split_text("a" * 160) == ("gsm7", ["a" * 160])
    alphabet, parts = split_text("a" * 161)
    assert alphabet == "gsm7" and [len(p) for p in parts] == [153, 8]
    # each of { } costs two septets: 80 of them fill 160
    assert len(split_text("{}" * 40)[1]) == 1 and len(split_text("{}" * 40 + "x")[1]) == 2
    # a part never ends between ESC and its code
    _, parts = split_text("a" * 152 + "€" + "b" * 10)
    assert parts[0] == "a" * 152 and parts[1].startswith("€")
    text = "[x] ~ \\ ^ | € {y}"
    assert decode_submit(encode_submit("10086", text)[0].hex).text == text


def test_national_number_type_and_odd_digit_padding() -> None:
    [pdu] = encode_submit("13912345678", "ok")
    assert pdu.hex[6:22] == "0B813119325476F8"  # 11 digits, type 81, nibble-swapped, F-padded


def test_surrogate_pairs_are_not_split() -> None:
    text = "档" * 66 + "😀" + "档" * 5
    _, parts = split_text(text)
    assert parts[0] == "档" * 66 and parts[1].startswith("😀")
    assert "".join(decode_submit(p.hex).text for p in encode_submit("+86139", text)) == text


def test_validity_octets() -> None:
    assert validity_octet(24) == 0xA7 and validity_octet(1) == 11 and validity_octet(12) == 143
    assert validity_octet(24 * 7) == 173


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        encode_submit("zhang", "x")
    with pytest.raises(ValueError, match="needs a text"):
        encode_submit("+86139", "")
    with pytest.raises(ValueError, match="not an SMS-DELIVER"):
        decode_deliver(encode_submit("+86139", "x")[0].hex)
    with pytest.raises(ValueError):
        decode_deliver("0791")
    with pytest.raises(ValueError, match="not a hex PDU"):
        decode_deliver("zz")


def test_deliver_round_trip_with_time_zone_and_concatenation() -> None:
    from archmon.sms_pdu import Concat

    moment = dt.datetime(2026, 3, 1, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-45)))
    sms = decode_deliver(encode_deliver("+8613912345678", "确认 1234", timestamp=moment, concat=Concat(9, 2, 1)))
    assert (sms.number, sms.text, sms.timestamp, sms.concat) == ("+8613912345678", "确认 1234", moment, Concat(9, 2, 1))


GSM_CHARS = st.sampled_from([c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXTENSION))


@given(st.text(GSM_CHARS, min_size=1, max_size=500) | st.text(min_size=1, max_size=300))
def test_any_text_survives_encoding_and_decoding(text: str) -> None:
    pdus = encode_submit("+8613800000000", text, ref=7)
    decoded = [decode_submit(p.hex) for p in pdus]
    assert "".join(d.text for d in decoded) == text
    assert all(p.tpdu_length == len(bytes.fromhex(p.hex)) - 1 for p in pdus)
    assert all(p.tpdu_length <= 164 for p in pdus)


# Recorded from an independent implementation, python-gsmmodem-new 0.13.0
# (gsmmodem.pdu.encodeSmsSubmitPdu(number, text, reference=0, validity=timedelta(hours=24),
# requestStatusReport=False)): a two-part 7-bit message with extension-table characters. The user-data header
# 05 00 03 00 02 0n is 6 octets, so one fill bit aligns the septets that follow it.
INDEPENDENT_TEXT = ("Room A1 smoke detected 03:04 +08:00. Reply 1 or ACK 12 to acknowledge; escalation to level 2 in "
                    "30 min [archmon] {test} ~ | ^ EUR") * 2
INDEPENDENT_PDUS = [
    (155, "0051000D91683108000000F10000A7A0050003000201A4EF771B148C81E6EDF7BA0C2297E9E531BD4C06C1663A180DB482E174309"
          "80B242DC3D979500CF4968382C325282603D1DFA0F078ED7EDFD965F2B9BC0395E7E3303B4C4FBFDD20FA1BC42EDBCB6C900C947683"
          "6630503BED066D7861F918DD7EBB373ED006452FCFE99B1468D3036D80A00D0554AC4AA5EF771B148C81E6EDF7BA0C2297E9"),
    (126, "0051000D91683108000000F10000A77E050003000202CA637A990C82CD74301A6805C3E9603017485A86B3F3A018E82D0705874B5"
          "04C06A2BF41E1F1DAFDBEB3CBE47379072ACFC76176989E7EBB41F437885DB697D9201928ED06CD60A076DA0DDAF0C2F231BAFD766F"
          "7CA00D8A5E9ED33729D0A607DA00411B0AA8589502"),
]


def test_a_multipart_7bit_message_matches_an_independent_encoder() -> None:
    pdus = encode_submit("+8613800000001", INDEPENDENT_TEXT, ref=0)
    assert [(p.tpdu_length, p.hex) for p in pdus] == INDEPENDENT_PDUS
    decoded = [decode_submit(h) for _, h in INDEPENDENT_PDUS]
    assert "".join(d.text for d in decoded) == INDEPENDENT_TEXT
    assert [d.concat for d in decoded] == [Concat(0, 2, 1), Concat(0, 2, 2)]


def test_the_automatic_deletion_group_carries_the_alphabet_like_the_general_group() -> None:
    moment = dt.datetime(2026, 3, 1, 3, 4, 5, tzinfo=CN8)
    ucs2 = encode_deliver("+8613912345678", "确认 12", timestamp=moment)
    # TS 23.038 §4: 01xx xxxx is "marked for automatic deletion", coded as 00xx xxxx: 0x48 is UCS2
    dcs_at = 2 + 2 * (1 + int(ucs2[:2], 16)) + 2 + 2 + 14 + 2  # SMSC, first octet, address (07 91 + 7), PID
    marked = ucs2[:dcs_at] + "48" + ucs2[dcs_at + 2:]
    sms = decode_deliver(marked)
    assert (sms.dcs, sms.alphabet, sms.text) == (0x48, "ucs2", "确认 12")
    compressed = ucs2[:dcs_at] + "28" + ucs2[dcs_at + 2:]
    with pytest.raises(ValueError, match="compressed"):
        decode_deliver(compressed)


def test_a_sender_name_keeps_its_type_even_when_it_is_all_digits() -> None:
    moment = dt.datetime(2026, 3, 1, tzinfo=CN8)
    named = decode_deliver(encode_deliver("13800000001", "1", timestamp=moment, alphanumeric=True))
    assert (named.number, named.number_type) == ("13800000001", "alphanumeric")
    number = decode_deliver(encode_deliver("13800000001", "1", timestamp=moment))
    assert (number.number, number.number_type) == ("13800000001", "unknown")
    assert decode_deliver(encode_deliver("+8613800000001", "1", timestamp=moment)).number_type == "international"
    bank = decode_deliver(encode_deliver("BOC", "余额", timestamp=moment))
    assert (bank.number, bank.number_type) == ("BOC", "alphanumeric")


def test_split_text_says_what_it_returns_by_name() -> None:
    split = split_text("档" * 71)
    assert split.alphabet == "ucs2" and [len(p) for p in split.parts] == [67, 4]
