"""The signature canonicalisation against the reference's captured SDK request (test vector)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from opencbr.iam import signing

UA = (
    "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 "
    "impl/CPython; app/df27c5b0-ac12-4f62-84d7-3d957bdf485a"
)
HEADERS = {
    "content-type": "application/json;charset=utf-8",
    "host": "127.0.0.1:40603",
    "user-agent": UA,
    "x-project-id": "a" * 32,
    "x-sdk-date": "20261125T055204Z",
}
PATH = "/v3/" + "a" * 32 + "/backups/6df2b54c-dd62-4059-a07c-1b8f24f2725d/members"
BODY = b'{"members": ["' + b"b" * 32 + b'"]}'


def _canonical() -> str:
    return signing.canonical_request(
        "POST", PATH, "", HEADERS, sorted(HEADERS), hashlib.sha256(BODY).hexdigest()
    )


def test_body_hash_matches_the_capture() -> None:
    assert hashlib.sha256(BODY).hexdigest() == (
        "4c8445428b89beed0e0f5628e843a8033c567d12ed0da30a9521df0bc15efffd"
    )


def test_string_to_sign_matches_the_capture() -> None:
    digest = hashlib.sha256(_canonical().encode()).hexdigest()
    assert digest == "861449120ba235cdcc7027cd37d941c25125dccc81defba376c7651784f3e2ff"


def test_signature_matches_the_capture() -> None:
    sig = signing.signature("SKSECRETA", HEADERS["x-sdk-date"], _canonical())
    assert sig.startswith("1c6df5d1")
    assert sig.endswith("bc74f")


def test_canonical_uri_reencodes_segments_and_adds_slash() -> None:
    assert signing.canonical_uri("/v3/a%20b/c") == "/v3/a%20b/c/"
    assert signing.canonical_uri("/v3/x/") == "/v3/x/"


def test_canonical_query_sorts_pairs_and_repeats_list_keys() -> None:
    raw = "sort=created_at%3Adesc&id=v2&name=a%20b%2Fc&id=v1&flag=true"
    assert signing.canonical_query(raw) == (
        "flag=true&id=v1&id=v2&name=a%20b%2Fc&sort=created_at%3Adesc"
    )


def test_parse_authorization_rejects_malformed_values() -> None:
    with pytest.raises(signing.SignatureError):
        signing.parse_authorization("SDK-HMAC-SHA256 Access=AK, Signature=abc")
    with pytest.raises(signing.SignatureError):
        signing.parse_authorization(
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date;host, Signature=" + "0" * 64
        )


def test_date_window_is_fifteen_minutes() -> None:
    now = datetime(2026, 11, 25, 12, 0, 0)
    skew = timedelta(minutes=15)
    signing.check_date("20261125T121400Z", now, skew)
    with pytest.raises(signing.SignatureError):
        signing.check_date("20261125T121600Z", now, skew)
    with pytest.raises(signing.SignatureError):
        signing.check_date("20261125T114400Z", now, skew)
    with pytest.raises(signing.SignatureError):
        signing.check_date("yesterday", now, skew)
