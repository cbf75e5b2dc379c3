"""Signed acknowledge links: what a token says, and every way one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from alerts.links import (
    AckClaim,
    AckSigner,
    LinkExpired,
    LinkTampered,
    ack_url,
    unverified_claim,
)

SECRET = b"test-only-secret-0123456789abcdef"
NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(hours=24)


def make(signer: AckSigner | None = None, **changes: object) -> str:
    fields: dict[str, object] = {
        "rule_id": "pm25-bad",
        "unit_code": "20194",
        "episode": 3,
        "email": "an.nguyen@danang.gov.vn",
        "lang": "vi",
        "expires_at": EXPIRES,
    }
    fields.update(changes)
    return (signer or AckSigner(SECRET)).token(**fields)  # type: ignore[arg-type]


def link_signature(body: str) -> bytes:
    key = hmac.new(SECRET, b"cityops alert ack link v1", hashlib.sha256).digest()
    return hmac.new(key, body.encode(), hashlib.sha256).digest()[:16]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_valid_token_gives_its_claim() -> None:
    token = make()
    assert AckSigner(SECRET).verify(token, NOW) == AckClaim(
        "pm25-bad", "20194", 3, "an.nguyen@danang.gov.vn", "vi", EXPIRES
    )
    # One URL path segment, no padding.
    assert all(char.isalnum() or char in "-_." for char in token)
    assert token.count(".") == 1
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert payload == {
        "r": "pm25-bad",
        "u": "20194",
        "e": 3,
        "m": "an.nguyen@danang.gov.vn",
        "l": "vi",
        "x": int(EXPIRES.timestamp()),
    }
    assert len(base64.urlsafe_b64decode(token.split(".")[1] + "==")) == 16


def test_english_and_unicode_round_trip() -> None:
    token = make(lang="en", email="trực.ban@đà-nẵng.vn", unit_code="aq-0007")
    claim = AckSigner(SECRET).verify(token, NOW)
    assert (claim.lang, claim.email, claim.unit_code) == ("en", "trực.ban@đà-nẵng.vn", "aq-0007")
    assert token.isascii()


def test_expired_token_carries_its_claim() -> None:
    token = make()
    signer = AckSigner(SECRET)
    assert signer.verify(token, EXPIRES - timedelta(seconds=1)).episode == 3
    with pytest.raises(LinkExpired) as caught:
        signer.verify(token, EXPIRES)
    assert caught.value.claim.rule_id == "pm25-bad"
    assert caught.value.claim.expires_at == EXPIRES


def test_tampered_payload_is_refused() -> None:
    body, signature = make().split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["e"] = 4  # another episode, same signature
    forged = f"{b64(json.dumps(payload, separators=(',', ':')).encode())}.{signature}"
    with pytest.raises(LinkTampered, match="signature"):
        AckSigner(SECRET).verify(forged, NOW)


def test_tampered_signature_is_refused() -> None:
    body, signature = make().split(".")
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
    flipped[0] ^= 1
    with pytest.raises(LinkTampered, match="signature"):
        AckSigner(SECRET).verify(f"{body}.{b64(bytes(flipped))}", NOW)


def test_a_token_of_another_secret_is_refused() -> None:
    other = make(AckSigner(b"another-secret-0123456789abcdef!"))
    with pytest.raises(LinkTampered):
        AckSigner(SECRET).verify(other, NOW)


def test_the_link_key_is_not_the_secret_itself() -> None:
    """A cookie signed with the session key must not pass as a link (derived key)."""
    body = b64(b'{"e":3,"l":"vi","m":"a@b","r":"pm25-bad","u":"20194","x":9999999999}')
    raw_key_signature = hmac.new(SECRET, body.encode(), hashlib.sha256).digest()[:16]
    with pytest.raises(LinkTampered):
        AckSigner(SECRET).verify(f"{body}.{b64(raw_key_signature)}", NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dot",
        ".",
        "abc.",
        ".abc",
        "a.b.c",
        "!!!.###",
        "eyJ4IjoxfQ.c2hvcnQ",  # a signature of the wrong length
        "é" * 10 + ".abc",
        "a" * 5000 + ".b",
    ],
)
def test_garbage_is_tampered_never_a_crash(token: str) -> None:
    with pytest.raises(LinkTampered):
        AckSigner(SECRET).verify(token, NOW)


def test_a_signed_payload_of_the_wrong_shape_is_tampered() -> None:
    """Even with a good signature (a bug elsewhere, or a key leak), odd fields are refused."""
    body = b64(b'{"e":"3","l":"fr","m":"","r":"x","u":"y","x":1}')
    with pytest.raises(LinkTampered, match="wrong fields"):
        AckSigner(SECRET).verify(f"{body}.{b64(link_signature(body))}", NOW)


def test_the_key_is_derived_as_documented() -> None:
    """key = HMAC-SHA256(secret, "cityops alert ack link v1"); signature = the first 16
    bytes of HMAC-SHA256(key, payload part)."""
    body, signature = make().split(".")
    assert signature == b64(link_signature(body))


def test_ack_url_and_unverified_claim() -> None:
    token = make()
    url = ack_url("https://ioc.danang.gov.vn/", token)
    assert url == f"https://ioc.danang.gov.vn/ack/{token}"
    claim = unverified_claim(url)
    assert claim is not None
    assert claim.expires_at == EXPIRES
    assert unverified_claim("https://ioc.danang.gov.vn/ack/garbage") is None


def test_naive_expiry_and_empty_secret_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make(expires_at=datetime(2026, 11, 3, 8, 0))
    with pytest.raises(ValueError, match="empty"):
        AckSigner(b"")
