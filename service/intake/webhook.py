"""`POST /webhook`: verify a LiveKit webhook over its raw bytes, enqueue it, answer in milliseconds.

Answers: 200 queued (or already queued: LiveKit's retry of an event is one job, `webhook:{event id}`),
200 ignored (a room outside `WARDEN_ROOMS`), 401 the token or body hash does not verify, 400 signed but
not a WebhookEvent, or holding a value Warden keeps exactly over its bound (`workers.core.bounds`: the
reduction refuses it whole), 413 body over `WARDEN_MAX_BODY_BYTES`, 503 the queue is unreachable
(LiveKit retries 5xx, so nothing answered 200 is lost). The endpoint touches neither the database nor
LiveKit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import jwt
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.intake.body import loads_webhook
from service.intake.token import fast_sha256
from service.metrics import count_webhook
from service.request_body import BodyTooLarge, read_body
from workers.adapters.webhook import from_webhook_json
from workers.core.canary import is_canary_room
from workers.core.errors import InvalidWebhook, MalformedEvent
from workers.core.events import Event, to_dict
from workers.queue.jobs import queue_webhook

log = logging.getLogger("warden.webhook")

LEEWAY = timedelta(seconds=60)

# `JSONResponse`'s bytes exactly (the same options), from one encoder: `json.dumps` with options builds
# an encoder per call, which was a tenth of the answer's cost.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _answer(content: dict[str, str]) -> Response:
    """A 200 answer, as `JSONResponse(content)` would write it."""
    return Response(_JSON.encode(content).encode(), media_type="application/json")


class WebhookVerifier:
    """Verifies LiveKit's webhook token, picking the secret by the token's issuer: the usual tokens on
    a fast path (`service.intake.token`), any other with livekit-api's `TokenVerifier`."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._verifiers = {key: TokenVerifier(key, secret, leeway=LEEWAY) for key, secret in keys.items()}
        self._secrets = {key: secret.encode() for key, secret in keys.items()}
        # With one key there is nothing to choose: the token is decoded once, by the verifier (which
        # checks the issuer too). With several, the unverified issuer picks the secret first.
        self._only = next(iter(self._verifiers.values())) if len(self._verifiers) == 1 else None

    @staticmethod
    def _issuer(token: str) -> str:
        try:
            return str(jwt.decode(token, options={"verify_signature": False}).get("iss", ""))
        except jwt.PyJWTError:
            raise InvalidWebhook("Authorization is not a JWT") from None

    def sha256(self, authorization: str | None) -> str:
        """The `sha256` claim of a token signed with one of the configured keys, or `InvalidWebhook`."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token:
            raise InvalidWebhook("missing Authorization token")
        fast = fast_sha256(token, self._secrets, LEEWAY.total_seconds())
        if fast is not None:
            return fast
        return self.claims(token).sha256 or ""

    def claims(self, authorization: str | None) -> Claims:
        """The claims of the token as livekit-api's `TokenVerifier` verifies them, or `InvalidWebhook`."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        if not token:
            raise InvalidWebhook("missing Authorization token")
        verifier = self._only or self._verifiers.get(self._issuer(token))
        if verifier is None:
            raise InvalidWebhook("token signed with an unknown API key")
        try:
            return verifier.verify(token)
        except jwt.ExpiredSignatureError:
            raise InvalidWebhook("token expired") from None
        except jwt.InvalidIssuerError:
            raise InvalidWebhook("token signed with an unknown API key") from None
        except jwt.InvalidSignatureError:
            raise InvalidWebhook("token signature does not verify") from None
        except jwt.DecodeError:
            raise InvalidWebhook("Authorization is not a JWT") from None
        except jwt.PyJWTError:
            raise InvalidWebhook("token signature does not verify") from None
        except Exception as exc:  # a signed token whose grants livekit-api cannot read (a list for `video`)
            raise InvalidWebhook(f"token claims are malformed ({type(exc).__name__})") from None

    def verify(self, body: bytes, authorization: str | None) -> Event:
        """Return the reduced event, or raise `InvalidWebhook` (401) / `MalformedEvent` (400)."""
        try:
            expected = base64.b64decode(self.sha256(authorization), validate=True)
        except binascii.Error:
            raise InvalidWebhook("token's sha256 claim is not base64") from None
        digest = hashlib.sha256(body)
        if not expected or not hmac.compare_digest(digest.digest(), expected):
            raise InvalidWebhook("body does not match the token's sha256")
        # The hash was checked over the exact bytes above; reading them never re-serialises them.
        data = loads_webhook(body)
        return from_webhook_json(data, fallback_id=f"sha256-{digest.hexdigest()[:32]}")


async def receive_webhook(request: Request) -> Response:
    settings = request.state.settings
    try:
        body = await read_body(request, settings.warden_max_body_bytes)
        event = request.state.verifier.verify(body, request.headers.get("authorization"))
    except BodyTooLarge:
        count_webhook("unknown", "too_large")
        return JSONResponse({"error": f"body over {settings.warden_max_body_bytes} bytes"}, status_code=413)
    except InvalidWebhook as exc:
        log.warning("webhook rejected: %s", exc)
        count_webhook("unknown", "unauthorized")
        return JSONResponse({"error": str(exc)}, status_code=401)
    except MalformedEvent as exc:
        log.warning("webhook rejected: %s", exc)
        count_webhook("unknown", "malformed")
        return JSONResponse({"error": str(exc)}, status_code=400)
    # A canary's room is read whatever WARDEN_ROOMS says: its webhooks tell the canary the agent came.
    if event.room_name and not settings.watches(event.room_name) and not is_canary_room(event.room_name):
        count_webhook(event.kind, "ignored")
        return _answer({"status": "ignored", "reason": "room not in WARDEN_ROOMS", "id": event.id})
    try:
        queued = await queue_webhook(request.state.enqueuer, event.id, to_dict(event), time.time())
    except (RedisError, OSError, TimeoutError) as exc:
        log.error("queue unavailable, answering 503 so that LiveKit retries: %s", type(exc).__name__)
        count_webhook(event.kind, "unavailable")
        return JSONResponse({"error": "queue unavailable, retry later"}, status_code=503)
    verdict = "queued" if queued else "duplicate"
    count_webhook(event.kind, verdict)
    return _answer({"status": verdict, "id": event.id})
