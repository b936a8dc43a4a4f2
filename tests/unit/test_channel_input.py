"""The room channel's input boundary: chat and questions normalised like every name and title (infra.text),
and frames that would crash a parser (deep nesting, huge numbers, lone surrogates) refused as errors."""

from __future__ import annotations

import json

import pytest

from streaming.channel_state import Ask, ChannelError, Chat, Limits, parse_command, participant_from_claims

LIMITS = Limits()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("你好", "你好", id="plain"),
        pytest.param("\u202egpj.exe", "gpj.exe", id="bidi-override-removed"),
        pytest.param("a\u2066b\u2069", "ab", id="isolates-removed"),
        pytest.param("one\ntwo\r\nthree", "one two three", id="line-breaks-become-spaces"),
        pytest.param("\x1b[31mred\x00", "[31mred", id="controls-removed"),
        pytest.param("Zoe\u0301", "Zoé", id="nfc"),
    ],
)
def test_chat_and_questions_are_normalised(text: str, shown: str) -> None:
    assert parse_command(json.dumps({"type": "chat", "text": text}), LIMITS) == Chat(shown)
    assert parse_command(json.dumps({"type": "ask", "text": text}), LIMITS) == Ask(shown)


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        pytest.param(json.dumps({"type": "chat", "text": "\ud800"}), "invalid_message", "text", id="lone"),
        pytest.param(json.dumps({"type": "ask", "text": "\u202e"}), "invalid_message", "text", id="bidi"),
        pytest.param("[" * 2000 + "]" * 2000, "invalid_json", None, id="2000-deep-array"),
        pytest.param(
            json.dumps({"type": "presence_check", "window_s": 10**400}), "invalid_message", "window_s",
            id="window-a-400-digit-integer",
        ),
        pytest.param('{"type": "presence_check", "window_s": NaN}', "invalid_message", "window_s", id="nan"),
        pytest.param('{"type":"presence_check","window_s":1e999}', "invalid_message", "window_s", id="inf"),
    ],
)  # fmt: skip
def test_frames_that_would_crash_a_parser_are_refused(raw: str, code: str, field: str | None) -> None:
    with pytest.raises(ChannelError) as refused:
        parse_command(raw, LIMITS)
    assert refused.value.code == code
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        pytest.param("\u202e吴磊", "吴磊", id="bidi-removed"),
        pytest.param("吴\n磊", "吴 磊", id="newline"),
        pytest.param("\ud800", "#7", id="surrogate-falls-back-to-the-id"),
    ],
)
def test_names_in_room_tokens_are_normalised(name: str, shown: str) -> None:
    assert participant_from_claims(7, "learner", {"name": name}, LIMITS).name == shown
