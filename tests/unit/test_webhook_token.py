"""The token fast path (`service.intake.token`) against livekit-api's `TokenVerifier`: over generated
and mutated tokens, whenever the fast path decides (accept, or reject), it decides as `TokenVerifier`
does; the tokens livekit-server sends are decided by the fast path."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.cli.signing import sign
from service.intake.token import fast_sha256
from service.intake.webhook import LEEWAY, WebhookVerifier
from workers.core.errors import InvalidWebhook

KEYS = {
    "APIkey1": "one-" + "x" * 60,
    "APIkey2": "two-" + "y" * 60,
}
SECRETS = {k: v.encode() for k, v in KEYS.items()}
NOW = int(time.time())

claim_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)
claims_strategy = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([*KEYS, "otherkey", ""]) | claim_values,
        "exp": st.integers(NOW - 200, NOW + 400) | claim_values,
        "nbf": st.integers(NOW - 400, NOW + 200) | claim_values,
        "sha256": st.just(base64.b64encode(b"x" * 32).decode()) | claim_values,
        "sub": st.just("") | claim_values,
        "video": st.just({}) | st.just({"roomJoin": True, "room": "r"}) | claim_values,
        "aud": st.text(max_size=4),
        "iat": st.integers(NOW - 100, NOW + 200) | claim_values,
        "name": st.text(max_size=4),
    },
)
headers = st.sampled_from([None, {"typ": "JWT"}, {"kid": "APIkey1"}, {"typ": "JWS"}])


def _verdict_slow(token: str) -> str:
    try:
        return "ok:" + (WebhookVerifier(KEYS).claims(token).sha256 or "")
    except InvalidWebhook:
        return "rejected"


def _verdict_fast(token: str) -> str | None:
    try:
        sha = fast_sha256(token, SECRETS, LEEWAY.total_seconds(), now=time.time())
    except InvalidWebhook:
        return "rejected"
    return None if sha is None else "ok:" + sha


@settings(max_examples=600, deadline=None)
@given(
    claims=claims_strategy,
    header=headers,
    key=st.sampled_from([*KEYS.values(), "bad-" + "z" * 60]),
    algorithm=st.sampled_from(["HS256", "HS256", "HS384"]),
    flip=st.none() | st.integers(0, 400),
)
def test_when_the_fast_path_decides_it_decides_as_token_verifier(
    claims: dict[str, object], header: dict[str, str] | None, key: str, algorithm: str, flip: int | None
) -> None:
    try:
        token = jwt.encode(claims, key, algorithm=algorithm, headers=header)
    except (TypeError, ValueError):
        return  # PyJWT cannot even encode such claims
    if flip is not None:  # one character changed anywhere: header, claims or signature
        i = flip % len(token)
        token = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    fast = _verdict_fast(token)
    if fast is not None:
        assert fast == _verdict_slow(token)


def test_livekit_servers_tokens_are_decided_on_the_fast_path() -> None:
    token = sign(b'{"event":"room_started"}', "APIkey2", KEYS["APIkey2"])
    sha = base64.b64encode(__import__("hashlib").sha256(b'{"event":"room_started"}').digest()).decode()
    assert fast_sha256(token, SECRETS, 60) == sha
    expired = sign(b"{}", "APIkey1", KEYS["APIkey1"], ttl=timedelta(seconds=-120))
    with pytest.raises(InvalidWebhook, match="expired"):
        fast_sha256(expired, SECRETS, 60)
    forged = sign(b"{}", "APIkey1", KEYS["APIkey2"])
    with pytest.raises(InvalidWebhook, match="signature"):
        fast_sha256(forged, SECRETS, 60)
    assert fast_sha256(sign(b"{}", "unknown", "s" * 64), SECRETS, 60) is None  # TokenVerifier words it


def test_a_signed_token_with_unreadable_grants_is_refused_not_a_crash() -> None:
    claims = {"iss": "APIkey1", "exp": int(time.time()) + 600, "video": [1]}
    token = jwt.encode(claims, KEYS["APIkey1"], algorithm="HS256")
    with pytest.raises(InvalidWebhook, match="malformed"):
        WebhookVerifier(KEYS).sha256(token)
