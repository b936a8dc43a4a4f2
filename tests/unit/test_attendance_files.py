"""Attendance files as Tencent Meeting and DingTalk export them (and as Excel re-saves them): header
variants, meeting information above the header, several rows per person, dial-in rows, summary and note
rows, encodings, date forms and Excel date cells; a malformed row is reported and nothing else is lost.
Fixtures are written here: CSV bytes by hand, .xlsx by openpyxl (an independent writer)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest

from infra.errors import Invalid
from integrations.files import FileRow, Kind, Skip, open_attendance, parse_duration_s, parse_time
from integrations.identity import Decision, Link, Match, PhoneIndex, Reason, decide, sha256_phone
from integrations.records import ExternalRecord, Platform, Trust


def utc(*parts: int) -> datetime:
    """A Beijing wall-clock time as the UTC instant it is."""
    return datetime(*parts, tzinfo=UTC) - timedelta(hours=8)  # type: ignore[misc]


def read(data: bytes, platform: Platform | None = Platform.TENCENT) -> tuple[object, list[FileRow]]:
    with open_attendance(io.BytesIO(data), platform=platform, meeting_ref="m1") as f:
        return f.layout, list(f.rows())


def xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


TENCENT_INFO = [["会议主题", "2025年度公需科目直播讲座"], ["会议号", "445 999 969"], *[[""]] * 6]


def records(rows: list[FileRow]) -> list[ExternalRecord]:
    return [r.record for r in rows if r.record is not None]


@pytest.mark.parametrize(
    ("headers", "expected_kind"),
    [
        (["用户昵称（入会昵称）", "入会时间", "退会时间", "单次参会时长", "房间类型"], Kind.INTERVALS),
        (["参会者", "加入时间", "离开时间", "设备类型", "手机号"], Kind.INTERVALS),
        (["入会时间 ", "离会时间", "参会时长(分钟)", "用户昵称"], Kind.INTERVALS),
        (
            ["参会人", "入会时间", "离会时间", "在会时长", "是否主持人", "是否外部成员", "入会方式"],
            Kind.INTERVALS,
        ),
        (["姓名", "部门", "工号", "观看直播时长(分钟)", "观看回放时长(分钟)", "是否观看"], Kind.TOTALS),
        (
            ["用户昵称（入会昵称）", "首次入会时间", "最后退会时间", "入会次数", "累计参会时长", "身份"],
            Kind.TOTALS,
        ),
    ],
    ids=[
        "tencent-detail",
        "tencent-variant",
        "reordered-with-unit",
        "dingtalk-conf",
        "dingtalk-live",
        "summary",
    ],
)
def test_header_variants_are_recognized(headers: list[str], expected_kind: Kind) -> None:
    layout, _rows = read(("\ufeff" + ",".join(headers) + "\n").encode())
    assert layout.kind is expected_kind  # type: ignore[attr-defined]
    assert layout.unknown_columns == ()  # type: ignore[attr-defined]


def test_an_unknown_column_is_listed_not_guessed() -> None:
    layout, _ = read("参会者,入会时间,离会时间,满意度\n".encode())
    assert layout.unknown_columns == ("满意度",)  # type: ignore[attr-defined]


def test_tencent_xlsx_detail_sheet_is_read_below_the_meeting_information() -> None:
    data = xlsx(
        {
            "成员参会概况": [
                *TENCENT_INFO,
                ["用户昵称（入会昵称）", "首次入会时间", "最后退会时间", "入会次数", "累计参会时长"],
                ["张三(张三)", "2024-12-24 10:00:02", "2024-12-24 12:00:00", 2, "1:50:00"],
            ],
            "成员参会明细": [
                *TENCENT_INFO,
                ["用户昵称（入会昵称）", "入会时间", "退会时间", "单次参会时长", "房间类型"],
                ["张三(张三)", "2024-12-24 10:00:02", "2024-12-24 11:00:00", "0:59:58", "PC"],
                [
                    "张三(张三)",
                    datetime(2024, 12, 24, 11, 5),  # noqa: DTZ001 - an Excel date cell has no zone
                    datetime(2024, 12, 24, 12, 0),  # noqa: DTZ001
                    "0:55:00",
                    "Android",
                ],
                ["张三(张三)", 45650.5, 45650.52083333333, "", "iOS"],  # serial numbers, no date format
                ["138****8000", "2024/12/24 10:10", "2024/12/24 12:00", "", "电话入会"],
                [None],
                ["合计", "", "", "", ""],
                ["注：数据仅供参考"],
            ],
        }
    )
    layout, rows = read(data, platform=None)
    assert layout.sheet == "成员参会明细"  # type: ignore[attr-defined]
    assert layout.ignored_sheets == ("成员参会概况",)  # type: ignore[attr-defined]
    assert layout.meeting_code == "445999969"  # type: ignore[attr-defined]
    assert layout.guess_platform() is Platform.TENCENT  # type: ignore[attr-defined]
    got = records(rows)
    assert [(r.display_name, r.join_at, r.leave_at, r.is_pstn) for r in got] == [
        ("张三(张三)", utc(2024, 12, 24, 10, 0, 2), utc(2024, 12, 24, 11, 0, 0), False),
        ("张三(张三)", utc(2024, 12, 24, 11, 5), utc(2024, 12, 24, 12, 0), False),
        ("张三(张三)", utc(2024, 12, 24, 12, 0), utc(2024, 12, 24, 12, 30), False),
        ("138****8000", utc(2024, 12, 24, 10, 10), utc(2024, 12, 24, 12, 0), True),
    ]
    assert all(r.trust is Trust.HIGH and r.external_meeting_ref == "m1" for r in got)
    assert len({r.row_key for r in got}) == 4
    skips = [(r.ref, r.skip) for r in rows if r.record is None]
    assert skips == [
        ("成员参会明细!14", Skip.BLANK),
        ("成员参会明细!15", Skip.SUMMARY),
        ("成员参会明细!16", Skip.NOTE),
    ]


def test_a_malformed_row_is_reported_and_nothing_else_is_lost() -> None:
    text = (
        "参会者,入会时间,离会时间,手机号\n"
        "王五,2024-12-24 10:00,2024-12-24 11:00,13800138000\n"
        '"bad"quote,2024-12-24 10:00,2024-12-24 11:00,\n'
        "李四,2024-13-24 10:00,2024-12-24 11:00,\n"
        "赵六,2024-12-24 11:00,2024-12-24 10:00,\n"
        "\n"
        "王五,2024年12月24日 11:30:05,2024年12月24日 12:00:00,+86 138-0013-8000\n"
    )
    _layout, rows = read(text.encode("utf-8"))
    assert [(r.ref, r.skip) for r in rows] == [
        ("row 2", None),
        ("row 3", Skip.MALFORMED),
        ("row 4", Skip.MALFORMED),
        ("row 5", Skip.MALFORMED),
        ("row 6", Skip.BLANK),
        ("row 7", None),
    ]
    assert "CSV" in rows[1].detail
    assert "month" in rows[2].detail
    assert "before" in rows[3].detail
    got = records(rows)
    assert [r.phone for r in got] == ["13800138000", "13800138000"]
    assert got[1].join_at == utc(2024, 12, 24, 11, 30, 5)
    assert all(r.trust is Trust.LOW for r in got)  # a CSV is a re-saved (editable) file


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "utf-16"])
def test_csv_encodings_excel_writes_are_read(encoding: str) -> None:
    sep = "\t" if encoding == "utf-16" else ","
    text = "\r\n".join(
        [sep.join(["会议主题", "培训"]), sep.join(["参会者", "入会时间", "离会时间", "设备类型"]),
         sep.join(["张三", "2024-12-24 10:00:00", "2024-12-24 11:00:00", "PC"]),
         sep.join(["电话用户", "2024-12-24 10:00:00", "2024-12-24 11:00:00", "PSTN"])]
    )  # fmt: skip
    layout, rows = read(text.encode(encoding))
    assert layout.header_row == 2  # type: ignore[attr-defined]
    got = records(rows)
    assert [(r.display_name, r.is_pstn) for r in got] == [("张三", False), ("电话用户", True)]


def test_dingtalk_live_totals_take_the_header_unit_and_are_low_trust() -> None:
    text = (
        "姓名,部门,工号,UnionId,观看直播时长(分钟),观看回放时长(分钟),是否观看\n"
        "李四,设计部,1001,DC7w,95.5,3,是\n"
        "王五,设计部,1002,,0,0,否\n"
    )
    layout, rows = read(text.encode(), platform=None)
    assert layout.guess_platform() is Platform.DINGTALK_LIVE  # type: ignore[attr-defined]
    (li, wang) = records(rows)
    assert (li.external_user_id, li.watched_s, li.join_at, li.trust) == ("DC7w", 95.5 * 60, None, Trust.LOW)
    assert wang.watched_s == 0


@pytest.mark.parametrize(
    ("value", "unit", "seconds"),
    [("1:02:03", "", 3723), ("62:03", "", 3723), ("1小时2分3秒", "", 3723), ("45分钟", "", 2700),
     ("30", "秒", 30), (2.5, "小时", 9000), (timedelta(minutes=5), "", 300), ("--", "", None)],
)  # fmt: skip
def test_durations(value: object, unit: str, seconds: float | None) -> None:
    assert parse_duration_s(value, unit) == seconds  # type: ignore[arg-type]


def test_a_bare_number_duration_without_a_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="no unit"):
        parse_duration_s("45", "")


@pytest.mark.parametrize(
    "text",
    ["2024-12-24 10:00:02", "2024/12/24 10:00:02", "2024.12.24 10:00:02", "2024年12月24日 10时00分02秒",
     "2024-12-24T10:00:02+08:00", "2024-12-24T02:00:02Z"],
)  # fmt: skip
def test_time_forms(text: str) -> None:
    assert parse_time(text) == utc(2024, 12, 24, 10, 0, 2)


def test_time_without_seconds_and_unix_numbers() -> None:
    assert parse_time("2024/12/24 10:00") == utc(2024, 12, 24, 10, 0)
    assert parse_time(1735005602) == datetime.fromtimestamp(1735005602, UTC)
    assert parse_time(1663290000000) == datetime.fromtimestamp(1663290000, UTC)


def test_files_that_are_not_attendance_are_refused() -> None:
    with pytest.raises(Invalid, match="header"):
        read(b"a,b,c\n1,2,3\n")
    with pytest.raises(Invalid, match=r"\.xls"):
        read(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    with pytest.raises(Invalid, match="xlsx"):
        read(b"PK\x03\x04 not really a zip")


# -- identity ------------------------------------------------------------------------------------------


def rec(
    uid: str | None = None, phone: str | None = None, pstn: bool = False, hashed: bool = False
) -> ExternalRecord:
    return ExternalRecord(
        Platform.TENCENT, "m1", "k", uid, "昵称", utc(2024, 1, 1), None, is_pstn=pstn, phone=phone,
        phone_hashed=hashed,
    )  # fmt: skip


PHONES = PhoneIndex({1: "13800000001", 2: "13800000002"}, tencent_secret_id="AKIDsecret")


@pytest.mark.parametrize(
    ("record", "links", "expected"),
    [
        (rec("u1"), {"u1": Link(1, True)}, Decision(Match.LINKED, Reason.LINKED_ACCOUNT, 1)),
        (rec("u1", "13800000001"), {"u1": Link(1, False)},
         Decision(Match.LINKED, Reason.LINK_VERIFIED_BY_PHONE, 1, verify_link=True)),
        (rec("u1"), {"u1": Link(1, False)},
         Decision(Match.UNMATCHED, Reason.LINK_NOT_VERIFIED, suggested_person_id=1)),
        (rec("u1", "13800000002"), {"u1": Link(1, False)},
         Decision(Match.UNMATCHED, Reason.LINK_AND_PHONE_DISAGREE, suggested_person_id=2)),
        (rec(None, "13800000002"), {}, Decision(Match.PHONE, Reason.PHONE, 2)),
        (rec("u9", "13800000002"), {}, Decision(Match.PHONE, Reason.PHONE, 2, new_link=True)),
        (rec(None, sha256_phone("x")), {}, Decision(Match.UNMATCHED, Reason.PHONE_NOT_ENROLLED)),
        (rec("u9"), {}, Decision(Match.UNMATCHED, Reason.ACCOUNT_NOT_LINKED)),
        (rec(None), {}, Decision(Match.UNMATCHED, Reason.NAME_ONLY)),
        (rec("u1", "13800000001", pstn=True), {"u1": Link(1, True)},
         Decision(Match.PSTN, Reason.DIAL_IN, suggested_person_id=1)),
    ],
    ids=["verified-link", "link-verified-by-phone", "unverified-link", "link-phone-disagree", "phone",
         "phone-links-account", "phone-not-enrolled", "unknown-account", "nickname-only", "dial-in"],
)  # fmt: skip
def test_identity_decisions(record: ExternalRecord, links: dict[str, Link], expected: Decision) -> None:
    assert decide(record, links, PHONES) == expected


def test_tencent_hashed_phones_match_with_the_organizations_secret_id() -> None:
    from integrations.identity import tencent_phone

    hashed = rec(None, tencent_phone("13800000001", "AKIDsecret"), hashed=True)
    assert decide(hashed, {}, PHONES).person_id == 1
    assert decide(hashed, {}, PhoneIndex({1: "13800000001"})).match is Match.UNMATCHED
