"""The pure rules of courseware uploads (catalog.courseware.upload): part sizes, what a start and a
completion may say, how a completion is checked against the store's list; and the page policy that lets
pages PUT parts to an S3 server at another origin."""

from __future__ import annotations

import pytest

from catalog.courseware import upload
from infra.errors import Invalid
from infra.multipart import MAX_PARTS, StoredPart
from infra.security_headers import PAGE_CSP, page_csp
from infra.settings import Settings

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "part_size", "count"),
    [
        pytest.param(1, 16 * MiB, 1, id="one-byte"),
        pytest.param(16 * MiB, 16 * MiB, 1, id="exactly-one-part"),
        pytest.param(16 * MiB + 1, 16 * MiB, 2, id="one-byte-over"),
        pytest.param(2 * 1024 * MiB, 16 * MiB, 128, id="2GiB"),
        pytest.param(200 * 1024 * MiB, 21 * MiB, 9753, id="200GiB-bigger-parts"),
    ],
)
def test_parts_are_16_mib_unless_the_file_needs_more_than_the_part_limit(
    size: int, part_size: int, count: int
) -> None:
    assert upload.part_size_for(size) == part_size
    assert upload.part_count(size, part_size) == count
    assert count <= MAX_PARTS
    assert sum(upload.expected_size(n, size, part_size) for n in range(1, count + 1)) == size


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("video/mp4", True),
        ("video/quicktime", True),
        ("Video/MP4; codecs=avc1", True),
        ("application/pdf", True),
        ("video/", False),
        ("video/../x", False),
        ("text/plain", False),
        ("application/octet-stream", False),
    ],
)
def test_only_videos_and_pdfs_may_be_uploaded(content_type: str, ok: bool) -> None:
    if ok:
        assert upload.check_content_type(content_type) in (content_type.split(";")[0].lower(),)
    else:
        with pytest.raises(Invalid):
            upload.check_content_type(content_type)


def test_a_start_over_the_limit_names_the_size() -> None:
    with pytest.raises(Invalid) as err:
        upload.upload_request({"file_name": "a.mp4", "size_bytes": 11, "content_type": "video/mp4"}, 10)
    assert err.value.field == "size_bytes"


@pytest.mark.parametrize(
    "body",
    [
        {"parts": []},
        {"parts": [{"number": 1}]},
        {"parts": [{"number": 0, "etag": "a"}]},
        {"parts": [{"number": 1, "etag": "a"}, {"number": 1, "etag": "b"}]},
        {"parts": [{"number": True, "etag": "a"}]},
        {"parts": "all"},
        {"parts": [{"number": 1, "etag": "a"}], "more": 1},
    ],
)
def test_a_malformed_completion_is_invalid(body: dict[str, object]) -> None:
    with pytest.raises(Invalid):
        upload.completion(body)


def test_a_completion_is_sorted_and_etags_unquoted() -> None:
    body = {"parts": [{"number": 2, "etag": '"b"'}, {"number": 1, "etag": "a"}]}
    assert upload.completion(body) == [(1, "a"), (2, "b")]


def test_a_completion_must_match_what_the_store_holds() -> None:
    size, part = 16 * MiB + 5, 16 * MiB
    stored = [StoredPart(1, "a", part), StoredPart(2, "b", 5)]
    upload.verify_parts([(1, "a"), (2, "b")], stored, size, part)
    with pytest.raises(Invalid) as missing:
        upload.verify_parts([(1, "a")], stored, size, part)
    assert missing.value.details == {"missing": [2], "unexpected": []}
    with pytest.raises(Invalid) as wrong:
        upload.verify_parts([(1, "a"), (2, "x")], stored, size, part)
    assert wrong.value.details == {"parts": [2]}
    short = [StoredPart(1, "a", part - 1), StoredPart(2, "b", 5)]
    with pytest.raises(Invalid):
        upload.verify_parts([(1, "a"), (2, "b")], short, size, part)


def test_pages_may_put_parts_to_the_s3_server_browsers_reach() -> None:
    assert page_csp() == PAGE_CSP
    assert "connect-src 'self' https://s3.example.cn;" in page_csp(["https://s3.example.cn"])
    assert Settings().s3_browser_origin == ""
    assert Settings(s3_endpoint="minio:9000", s3_access_key="a", s3_secret_key="b").s3_browser_origin == (
        "http://minio:9000"
    )
    public = Settings(s3_endpoint="minio:9000", s3_public_url="https://lectern.example.cn/")
    assert public.s3_browser_origin == "https://lectern.example.cn"
