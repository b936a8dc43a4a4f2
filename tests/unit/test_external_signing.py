"""Tencent Meeting signing and parsing, byte for byte as DOMAIN §6.1 documents it, and DingTalk's units."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest

from infra.errors import Invalid
from integrations.dingtalk import member_record, watcher_record
from integrations.records import Platform, Trust
from integrations.tencent import (
    TencentCredentials,
    decode_name,
    participant_record,
    phone_hash,
    signature,
    signed_headers,
    string_to_sign,
)
from integrations.tencent_webhook import (
    check_str_answer,
    decode_data,
    encrypt,
    participant_events,
    timestamp_fresh,
    verify_signature,
    webhook_signature,
)

WORKED = "MmUxMGZkZjIzNmNiZDhkODYyOTA3NjEzYTIzYzM4NDcyNTc1ZjlmOGE4Njg4ZWNhMzQwNGY4MWFmODhkZjIwYg=="
URI = "/v1/meetings/13339451618278424869/participants?userid=host001&pos=0&size=100"


def test_the_worked_signature_example_is_reproduced_byte_for_byte() -> None:
    to_sign = string_to_sign("GET", "AKIDEXAMPLEsecretid0000", "483920117", "1735003800", URI, "")
    assert to_sign == (
        "GET\nX-TC-Key=AKIDEXAMPLEsecretid0000&X-TC-Nonce=483920117&X-TC-Timestamp=1735003800\n" + URI + "\n"
    )
    assert signature("EXAMPLEsecretkey0000000000000000", to_sign) == WORKED
    # Base64 of the lowercase hex digest, not of the raw digest.
    assert len(base64.b64decode(WORKED)) == 64


def test_signed_headers_carry_every_required_header_and_the_sdk_id_when_assigned() -> None:
    creds = TencentCredentials(
        "200000001", "AKIDEXAMPLEsecretid0000", "EXAMPLEsecretkey0000000000000000", "host001"
    )
    headers = signed_headers(creds, "GET", URI, "", "483920117", "1735003800")
    assert headers["X-TC-Signature"] == WORKED
    assert headers["AppId"] == "200000001"
    assert headers["X-TC-Registered"] == "1"
    assert "SdkId" not in headers
    assert "EXAMPLEsecretkey" not in repr(creds)


def test_the_phone_hash_and_base64_names_of_the_fixture() -> None:
    assert phone_hash("13800138000", "AKIDEXAMPLEsecretid0000") == (
        "318b700662ef54beb1f2aa5c625195c7f37ed00aa46ef8c739437b5fe759b2e5"
    )
    assert decode_name("5byg5LiJ") == "张三"
    assert decode_name("MTM4KioqKjgwMDA=") == "138****8000"
    assert decode_name("not base64!") == "not base64!"


def test_a_participant_row_becomes_a_record_with_second_timestamps() -> None:
    item = {"userid": "", "ms_open_id": "WMpstn01", "user_name": "MTM4KioqKjgwMDA=", "instanceid": 0,
            "join_time": "1735006000", "left_time": ""}  # fmt: skip
    record = participant_record(item, "13339451618278424869:1735005600", "page 1 #3")
    assert record.is_pstn
    assert record.external_user_id is None
    assert record.join_at == datetime(2024, 12, 24, 2, 6, 40, tzinfo=UTC)
    assert record.leave_at is None
    assert record.external_meeting_ref == "13339451618278424869:1735005600"


def _joined() -> str:
    event = {"event": "meeting.participant-joined", "trace_id": "t", "payload": [{
        "operate_time": 1735005602123,
        "operator": {"userid": "u1001", "ms_open_id": "WMa", "user_name": "张三", "instance_id": "1"},
        "meeting_info": {"meeting_id": "13339451618278424869", "meeting_code": "445999969"}}]}  # fmt: skip
    return base64.b64encode(json.dumps(event, ensure_ascii=False).encode()).decode()


def test_webhook_signature_sorts_token_timestamp_nonce_and_data() -> None:
    data = _joined()
    token, ts, nonce = "ExampleToken0000000000000", "1735005602123", "14964161"
    expected = hashlib.sha1("".join(sorted([token, ts, nonce, data])).encode()).hexdigest()
    assert webhook_signature(token, ts, nonce, data) == expected
    verify_signature(token, ts, nonce, data, expected)
    with pytest.raises(Invalid):
        verify_signature(token, ts, nonce, data + "x", expected)
    with pytest.raises(Invalid):
        verify_signature("", ts, nonce, data, expected)


def test_webhook_payloads_decode_plain_or_aes_and_check_str_is_url_decoded() -> None:
    key = "b" * 43
    plain = base64.b64decode(_joined()).decode()
    assert decode_data(_joined()) == plain
    assert decode_data(encrypt(plain, key), key) == plain
    assert check_str_answer("aGVsbG8%3D") == "hello"
    (event,) = participant_events(plain)
    assert event.record.join_at == datetime(2024, 12, 24, 2, 0, 2, 123000, tzinfo=UTC)
    assert event.record.instance == "1"
    assert event.ms_open_id == "WMa"


def test_webhook_timestamps_are_fresh_for_five_minutes_in_milliseconds() -> None:
    now = datetime.fromtimestamp(1735005602.123, UTC)
    assert timestamp_fresh("1735005602123", now)
    assert timestamp_fresh("1735005900000", now)
    assert not timestamp_fresh("1735005902124", now)
    assert not timestamp_fresh("soon", now)


def test_dingtalk_times_are_milliseconds_and_live_totals_are_low_trust() -> None:
    member = member_record(
        {"unionId": "u", "userNick": "张三", "joinTime": 1663290000000, "leaveTime": 1663293280000,
         "attendStatus": 6, "pstnJoin": False}, "c", "page 1 #1")  # fmt: skip
    assert (member.leave_at - member.join_at).total_seconds() == 3280  # type: ignore[operator]
    assert member.platform is Platform.DINGTALK_CONF
    live = watcher_record({"name": "李四", "unionId": "DC7w", "watchLiveTime": 189930}, "live", "p1", True)
    assert live.watched_s == pytest.approx(189.93)
    assert live.trust is Trust.LOW
    assert live.join_at is None
