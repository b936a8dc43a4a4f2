"""ICE server configuration: TURN REST credentials (coturn use-auth-secret) and URL checks."""

from __future__ import annotations

import pytest

from infra import ice
from infra.settings import SettingsError, from_env


def test_turn_credentials_are_the_turn_rest_api_scheme() -> None:
    # Expected password from: printf '1700000000:person-1' | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert ice.turn_credential("s3cret", "person-1", 1_700_000_000) == (
        "1700000000:person-1",
        "8K8P59G56PFrOjyPJLRMO7fIfhs=",
    )
    with pytest.raises(ValueError, match="':'"):
        ice.turn_credential("s3cret", "a:b", 1_700_000_000)


def test_stun_urls_go_as_they_are_and_turn_urls_get_a_credential_that_expires() -> None:
    servers = ice.ice_servers(
        ["stun:stun.example.cn:3478", "turn:turn.example.cn:3478", "turns:turn.example.cn:5349"],
        "s3cret",
        user="person-1",
        now=1_699_999_400.7,
        ttl_s=600,
    )
    assert servers[0].as_json() == {"urls": "stun:stun.example.cn:3478"}
    assert servers[1].as_json() == {
        "urls": "turn:turn.example.cn:3478",
        "username": "1700000000:person-1",
        "credential": "8K8P59G56PFrOjyPJLRMO7fIfhs=",
    }
    assert servers[2].username == servers[1].username
    assert ice.ice_servers([], "", user="x", now=0, ttl_s=1) == []


@pytest.mark.parametrize(
    ("urls", "secret", "problem"),
    [
        (["stun:a:3478", "turn:b:3478"], "", "no TURN secret"),
        (["http://example.cn"], "s", "not a stun:"),
        (["turn:b:3478"], "s", None),
        (["STUN:a:3478"], "", None),
        ([], "", None),
    ],
)
def test_configured_urls_are_checked(urls: list[str], secret: str, problem: str | None) -> None:
    found = ice.check_urls(urls, secret)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_settings_refuse_a_turn_server_without_a_secret() -> None:
    with pytest.raises(SettingsError, match="LECTERN_TURN_SECRET"):
        from_env({"LECTERN_ICE_SERVERS": "turn:turn.example.cn:3478"})
    with pytest.raises(SettingsError, match="LECTERN_TURN_CREDENTIAL_TTL_S"):
        from_env({"LECTERN_TURN_CREDENTIAL_TTL_S": "0"})
    settings = from_env({"LECTERN_ICE_SERVERS": "turn:turn.example.cn:3478", "LECTERN_TURN_SECRET": "s"})
    assert settings.turn_secret == "s"
    assert settings.redacted()["turn_secret"] == "***"


def test_whip_link_headers_carry_the_servers_as_rfc_9725_describes() -> None:
    stun, turn = ice.for_person(
        ["stun:stun.example.cn:3478", "turn:turn.example.cn:3478?transport=udp"],
        "s3cret",
        person_id=1,
        now=1_699_999_400,
        ttl_s=600,
    )
    assert stun.as_link() == '<stun:stun.example.cn:3478>; rel="ice-server"'
    assert turn.as_link() == (
        '<turn:turn.example.cn:3478?transport=udp>; rel="ice-server"; username="1700000000:person-1"; '
        'credential="8K8P59G56PFrOjyPJLRMO7fIfhs="; credential-type="password"'
    )
    odd = ice.IceServer("turn:t.example.cn", 'a"b', "c\\d")
    assert odd.as_link().endswith('username="a\\"b"; credential="c\\\\d"; credential-type="password"')
