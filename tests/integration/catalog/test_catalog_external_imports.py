"""Importing exported attendance files through the API, on SQLite and PostgreSQL: every row reported
(matched by phone hash, waiting for review, skipped and why), the same file again changes nothing, a
provider resolves an unmatched participant by hand (audited), learners link their own accounts, and bad
or foreign uploads get a JSON 4xx with nothing stored."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import aiohttp
import openpyxl
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from catalog.models import AuditEntry, ExternalAccountLink, ExternalImportBatch, ExternalRecordRow

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


def tencent_xlsx(learner_phone: str) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "成员参会明细"
    for row in (
        ["会议主题", "测试会议"],
        ["会议号", "445999969"],
        ["用户昵称（入会昵称）", "入会时间", "退会时间", "手机号", "设备类型"],
        ["学员甲", "2024-12-24 10:00:00", "2024-12-24 10:50:00", learner_phone, "PC"],
        ["学员甲", "2024-12-24 10:40:00", "2024-12-24 12:00:00", learner_phone, "Android"],
        ["改了名字的人", "2024-12-24 10:05", "2024-12-24 11:55", "", "iOS"],
        ["改了名字的人", "2024-12-24 11:56", "2024-12-24 12:00", "", "iOS"],
        ["138****8000", "2024-12-24 10:10", "2024-12-24 12:00", "", "电话入会"],
        ["坏行", "2024-12-24 99:00", "2024-12-24 12:00", "", "PC"],
        ["合计", "", "", "", ""],
    ):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(
    client: Client, world: World, data: bytes, who: str = "provider_admin", name: str = "a.xlsx"
) -> Any:
    form = aiohttp.FormData()
    # A file object: aiohttp warns about (and these tests fail on) large raw bytes in a form.
    form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    return await client.post(
        f"/api/sessions/{world.session_id}/external/import?platform=tencent",
        data=form,
        headers=world.actors[who].headers,
    )


async def count(world: World, model: Any) -> int:
    async with world.db.sessions.begin() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_exported_file_is_imported_row_by_row_and_again_changes_nothing(
    client: Client, world: World
) -> None:
    learner = world.actors["learner"]
    data = tencent_xlsx(learner.phone)
    resp = await upload(client, world, data)
    assert resp.status == 201, await resp.text()
    report = await resp.json()
    assert report["counts"] == {"rows": 7, "matched": 2, "needs_review": 3, "skipped": 2}
    assert report["reasons"] == {"phone": 2, "name_only": 2, "dial_in": 1, "malformed": 1, "summary": 1}
    assert report["layout"]["meeting_code"] == "445999969"
    bad = next(r for r in report["rows"] if r["reason"] == "malformed")
    assert bad["ref"] == "成员参会明细!9"
    assert "99:00" in bad["detail"]
    async with world.db.sessions.begin() as s:
        rows = list(await s.scalars(select(ExternalRecordRow).order_by(ExternalRecordRow.id)))
    assert [(r.display_name, r.match, r.person_id) for r in rows[:2]] == [
        ("学员甲", "phone", learner.person_id),
        ("学员甲", "phone", learner.person_id),
    ]
    assert all(r.phone_hash is None or len(r.phone_hash) == 64 for r in rows)
    assert learner.phone not in str([r.phone_hash for r in rows])  # only hashes are kept

    again = await upload(client, world, data, name="again.xlsx")
    assert again.status == 200
    assert (await again.json())["already_imported"] is True
    assert await count(world, ExternalRecordRow) == 5
    assert await count(world, ExternalImportBatch) == 1


async def test_a_csv_of_the_same_rows_adds_only_what_is_new(client: Client, world: World) -> None:
    csv_1 = "参会者,入会时间,离会时间\n张三,2024-12-24 10:00:00,2024-12-24 11:00:00\n".encode("gbk")
    csv_2 = csv_1 + "李四,2024-12-24 10:00:00,2024-12-24 11:00:00\n".encode("gbk")
    assert (await upload(client, world, csv_1, name="1.csv")).status == 201
    report = await (await upload(client, world, csv_2, name="2.csv")).json()
    assert report["reasons"] == {"duplicate": 1, "name_only": 1}
    assert await count(world, ExternalRecordRow) == 2


async def test_an_unmatched_participant_is_matched_by_hand_and_audited(client: Client, world: World) -> None:
    admin = world.actors["provider_admin"]
    await upload(client, world, tencent_xlsx(world.actors["learner"].phone))
    review = await (
        await client.get(f"/api/sessions/{world.session_id}/external/review", headers=admin.headers)
    ).json()
    assert review["participants"] == 2
    renamed = next(i for i in review["items"] if i["display_name"] == "改了名字的人")
    assert renamed["reason"] == "name_only"
    assert len(renamed["record_ids"]) == 2
    dial_in = next(i for i in review["items"] if i["is_pstn"])
    assert dial_in["reason"] == "dial_in"

    staff = world.actors["staff"].person_id  # not enrolled yet
    resp = await client.post(
        f"/api/external-records/{renamed['record_id']}/match",
        json={"person_id": staff},
        headers=admin.headers,
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["field"] == "person_id"
    await world.enroll(staff, world.course_id)
    resp = await client.post(
        f"/api/external-records/{renamed['record_id']}/match",
        json={"person_id": staff},
        headers=admin.headers,
    )
    assert resp.status == 200, await resp.text()
    assert sorted((await resp.json())["record_ids"]) == sorted(renamed["record_ids"])

    resp = await client.post(
        f"/api/external-records/{dial_in['record_id']}/match", json={"person_id": None}, headers=admin.headers
    )
    assert (await resp.json())["match"] == "rejected"
    review = await (
        await client.get(f"/api/sessions/{world.session_id}/external/review", headers=admin.headers)
    ).json()
    assert review["items"] == []
    async with world.db.sessions.begin() as s:
        matched = list(await s.scalars(select(ExternalRecordRow).where(ExternalRecordRow.match == "manual")))
        audit = list(await s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert {r.person_id for r in matched} == {staff}
    assert {r.matched_by for r in matched} == {admin.person_id}
    assert [a.action for a in audit] == ["external_record.match", "external_record.reject"]
    assert audit[0].actor_person_id == admin.person_id


async def test_only_the_providers_administrators_import_and_match(client: Client, world: World) -> None:
    data = tencent_xlsx(world.actors["learner"].phone)
    for who in ("other_provider_admin", "learner"):
        resp = await upload(client, world, data, who=who)
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
    await upload(client, world, data)
    async with world.db.sessions.begin() as s:
        record_id = await s.scalar(select(func.min(ExternalRecordRow.id)))
    resp = await client.post(
        f"/api/external-records/{record_id}/match",
        json={"person_id": world.actors["learner"].person_id},
        headers=world.actors["other_provider_admin"].headers,
    )
    assert resp.status == 403


async def test_a_bad_upload_is_a_json_4xx_and_stores_nothing(client: Client, world: World) -> None:
    resp = await upload(client, world, b"name,age\nx,1\n", name="x.csv")
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "file"
    resp = await client.post(
        f"/api/sessions/{world.session_id}/external/import",
        json={"file": "x"},
        headers=world.actors["provider_admin"].headers,
    )
    assert resp.status == 400
    resp = await upload(client, world, b"a" * (20 * 1024 * 1024 + 1), name="big.csv")
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"
    assert await count(world, ExternalImportBatch) == 0


async def test_a_learner_links_their_account_and_an_import_verifies_it_by_phone(
    client: Client, world: World
) -> None:
    learner = world.actors["learner"]
    resp = await client.put(
        "/api/me/external-accounts/dingtalk", json={"external_user_id": "union-abc"}, headers=learner.headers
    )
    assert resp.status == 200
    assert (await resp.json())["verified"] is False
    taken = await client.put(
        "/api/me/external-accounts/dingtalk",
        json={"external_user_id": "union-abc"},
        headers=world.actors["staff"].headers,
    )
    assert taken.status == 409
    text = (
        "参会人,UnionId,手机号,入会时间,离会时间\n"
        f"甲,union-abc,{learner.phone},2024-12-24 10:00,2024-12-24 11:00\n"
    )
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="d.csv")
    resp = await client.post(
        f"/api/sessions/{world.session_id}/external/import?platform=dingtalk_conf",
        data=form,
        headers=world.actors["provider_admin"].headers,
    )
    assert (await resp.json())["reasons"] == {"link_verified_by_phone": 1}
    mine = await (await client.get("/api/me/external-accounts", headers=learner.headers)).json()
    assert mine["accounts"][0]["verified"] is True
    async with world.db.sessions.begin() as s:
        assert await s.scalar(select(func.count()).select_from(ExternalAccountLink)) == 1
