"""Signed acknowledge links for alert e-mails: ``<public_url>/ack/<token>``.

The token names one episode of one (rule, unit), the person it was sent to, their language
and when the link expires; it is signed with HMAC-SHA256 under a key derived from the
dashboard's secret (core/secrets.py), so the alert engine signs what the dashboard checks
and a link key never equals the session-cookie key. Not encrypted: the payload is readable
(nothing in it is secret), only unforgeable.

    token = base64url(payload JSON) "." base64url(first 16 bytes of the HMAC)
    payload = {"r": rule, "u": unit, "e": episode, "m": e-mail, "l": "vi"|"en", "x": expiry}

``x`` is the expiry in whole seconds since the epoch (UTC). Padding ("=") is left out, so
the token is one URL path segment of [A-Za-z0-9_-.].
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

KEY_CONTEXT = b"cityops alert ack link v1"
SIGNATURE_BYTES = 16
MAX_TOKEN_CHARS = 2048  # a token longer than this was not made here


@dataclass(frozen=True, slots=True)
class AckClaim:
    """What a valid (or expired) token says."""

    rule_id: str
    unit_code: str
    episode: int
    email: str
    lang: Literal["vi", "en"]
    expires_at: datetime


class LinkError(ValueError):
    """The link cannot be used."""


class LinkTampered(LinkError):
    """Not a token made with our key: cut, altered, or signed with another secret."""


class LinkExpired(LinkError):
    """A genuine link past its expiry; ``claim`` says which alert it was for."""

    def __init__(self, claim: AckClaim) -> None:
        self.claim = claim
        super().__init__(f"the link expired at {claim.expires_at.isoformat()}")


class AckSigner:
    """Makes and checks tokens with one secret (the dashboard's key)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the ack link secret must not be empty")
        self._key = hmac.new(secret, KEY_CONTEXT, hashlib.sha256).digest()

    def token(
        self,
        rule_id: str,
        unit_code: str,
        episode: int,
        email: str,
        lang: str,
        expires_at: datetime,
    ) -> str:
        if expires_at.tzinfo is None:
            raise ValueError(f"expires_at must be timezone-aware: {expires_at!r}")
        payload = {
            "r": rule_id,
            "u": unit_code,
            "e": int(episode),
            "m": email,
            "l": "en" if lang == "en" else "vi",
            "x": int(expires_at.timestamp()),
        }
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        body = _encode(text.encode("utf-8"))
        return f"{body}.{_encode(self._sign(body))}"

    def verify(self, token: str, now: datetime) -> AckClaim:
        """The claim of a token made with this key. LinkTampered for anything else;
        LinkExpired (carrying the claim) when ``now`` is at or past its expiry."""
        body, signature = _split(token)
        if not hmac.compare_digest(self._sign(body), signature):
            raise LinkTampered("the link's signature does not match")
        claim = _claim(body)
        if now >= claim.expires_at:
            raise LinkExpired(claim)
        return claim

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()[:SIGNATURE_BYTES]


def ack_url(public_url: str, token: str) -> str:
    """The link to put in the e-mail: ``https://ioc.example/ack/<token>``."""
    return f"{public_url.rstrip('/')}/ack/{token}"


def unverified_claim(url_or_token: str) -> AckClaim | None:
    """What a link says, without checking its signature: only for showing, in the e-mail
    that carries it, when it expires. None when it does not read as a token."""
    token = url_or_token.rstrip("/").rpartition("/")[2]
    try:
        body, _ = _split(token)
        return _claim(body)
    except LinkTampered:
        return None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LinkTampered("the link is not base64url") from exc


def _split(token: str) -> tuple[str, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise LinkTampered("not an acknowledge link")
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature or "." in signature:
        raise LinkTampered("the link is not <payload>.<signature>")
    raw_signature = _decode(signature)
    if len(raw_signature) != SIGNATURE_BYTES:
        raise LinkTampered("the link's signature has the wrong length")
    return body, raw_signature


def _claim(body: str) -> AckClaim:
    try:
        data: Any = json.loads(_decode(body).decode("utf-8"))
        fields = (data["r"], data["u"], data["e"], data["m"], data["l"], data["x"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LinkTampered("the link's payload does not read") from exc
    rule_id, unit_code, episode, email, lang, expiry = fields
    texts_ok = all(isinstance(value, str) and value for value in (rule_id, unit_code, email))
    numbers_ok = all(
        isinstance(value, int) and not isinstance(value, bool) for value in (episode, expiry)
    )
    if not (texts_ok and numbers_ok and lang in ("vi", "en")):
        raise LinkTampered("the link's payload has the wrong fields")
    try:
        expires_at = datetime.fromtimestamp(expiry, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise LinkTampered("the link's expiry is not a time") from exc
    return AckClaim(rule_id, unit_code, episode, email, lang, expires_at)
