"""The fast path of webhook token verification, for the tokens livekit-server actually sends.

livekit-server signs each webhook with an HS256 JWT whose header is `{"alg":"HS256","typ":"JWT"}` and
whose claims are a handful of plain values (`iss`, `exp`, `nbf`, `sha256`, sometimes `sub`, `video`).
For such a token `fast_sha256` does what livekit-api's `TokenVerifier` (PyJWT underneath) does —
HMAC-SHA256 over the first two segments compared in constant time, issuer, expiry and not-before with
the same leeway — at a fifth of the cost, and returns the `sha256` claim.

Anything else (another header, an unusual claim, a claim of an unexpected type, a token that does not
even decode) is not judged here: `fast_sha256` returns None and the caller asks `TokenVerifier`, so
every unusual token gets exactly livekit-api's verdict. `tests/unit/test_webhook_token.py` checks, over
generated and mutated tokens, that whenever this path decides, it decides as `TokenVerifier` does.
"""

from __future__ import annotations

import binascii
import hmac
import json
import time

from workers.core.errors import InvalidWebhook

_HEADERS = ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256"})
# The first one as PyJWT and go-jose (livekit-server) encode it: recognised without decoding it.
_USUAL_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
_CLAIMS = frozenset({"iss", "exp", "nbf", "sha256", "sub", "video"})


_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _segment(data: str) -> bytes:
    """A base64url segment (`base64.urlsafe_b64decode`'s result, without its wrappers)."""
    return binascii.a2b_base64((data + "=" * (-len(data) % 4)).encode("ascii").translate(_URLSAFE))


def fast_sha256(token: str, secrets: dict[str, bytes], leeway: float, now: float | None = None) -> str | None:
    """The token's `sha256` claim if it verifies; `InvalidWebhook` if its signature does not or it has
    expired; None when the token is not of the usual shape (the caller then asks `TokenVerifier`)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header_b64, payload_b64, signature_b64 = parts
    try:
        if header_b64 != _USUAL_HEADER and json.loads(_segment(header_b64)) not in _HEADERS:
            return None
        claims = json.loads(_segment(payload_b64))
        signature = _segment(signature_b64)
    except (ValueError, binascii.Error):  # json's and base64's errors
        return None
    if type(claims) is not dict or not claims.keys() <= _CLAIMS:
        return None
    issuer, sha256, exp = claims.get("iss"), claims.get("sha256", ""), claims.get("exp")
    nbf, sub, video = claims.get("nbf", 0), claims.get("sub", ""), claims.get("video", {})
    if type(issuer) is not str or issuer not in secrets or type(exp) is not int or type(nbf) is not int:
        return None
    if type(sha256) is not str or type(sub) is not str or type(video) is not dict:
        return None
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode()
    expected = hmac.digest(secrets[issuer], signing_input, "sha256")  # OpenSSL's one-shot HMAC
    if not hmac.compare_digest(expected, signature):
        raise InvalidWebhook("token signature does not verify")
    now = time.time() if now is None else now
    if exp <= now - leeway:
        raise InvalidWebhook("token expired")
    if nbf > now + leeway:
        return None  # not yet valid: rare enough to word as PyJWT does
    return sha256
