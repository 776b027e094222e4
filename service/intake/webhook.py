"""`POST /webhook`: verify a LiveKit webhook over its raw bytes, enqueue it, answer in milliseconds.

Answers: 200 queued (or already queued: LiveKit's retry of an event is one job, `webhook:{event id}`),
200 ignored (a room outside `WARDEN_ROOMS`), 401 the token or body hash does not verify, 400 signed but
not a WebhookEvent, or holding a value Warden keeps exactly over its bound (`workers.core.bounds`: the
reduction refuses it whole), 413 body over `WARDEN_MAX_BODY_BYTES`, 503 the queue is unreachable
(LiveKit retries 5xx, so nothing answered 200 is lost). The endpoint touches neither the database nor
LiveKit.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import jwt
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from service.intake.body import loads_webhook
from service.intake.token import fast_sha256
from service.metrics import count_webhook
from service.request_body import BodyTooLarge
from workers.adapters.webhook import webhook_event
from workers.core.canary import is_canary_room
from workers.core.errors import InvalidWebhook, MalformedEvent
from workers.queue.jobs import queue_webhook

log = logging.getLogger("warden.webhook")

LEEWAY = timedelta(seconds=60)

# Every answer as `JSONResponse` writes it (the same bytes, the same headers), from one encoder:
# `json.dumps` with options builds an encoder per call, which was a tenth of the answer's cost.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


_CONTENT_TYPE = (b"content-type", b"application/json")
# The usual answer, `{"status":"queued","id":...}`, as `_JSON` writes it, without building the dict.
_QUEUED = b'{"status":"queued","id":'
_encode_string = json.encoder.encode_basestring  # what `_JSON` writes a string with (ensure_ascii off)


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

    def verify(self, body: bytes, authorization: str | None) -> dict[str, Any]:
        """Return the reduced event in the plain form its job carries (`webhook_event`), or raise
        `InvalidWebhook` (401) / `MalformedEvent` (400)."""
        claim = self.sha256(authorization)
        try:  # `base64.b64decode(claim, validate=True)`, without its wrappers
            expected = binascii.a2b_base64(claim, strict_mode=True)
        except ValueError:  # not base64, or not even ASCII (binascii.Error is a ValueError)
            raise InvalidWebhook("token's sha256 claim is not base64") from None
        digest = hashlib.sha256(body)
        if not expected or not hmac.compare_digest(digest.digest(), expected):
            raise InvalidWebhook("body does not match the token's sha256")
        # The hash was checked over the exact bytes above; reading them never re-serialises them.
        data = loads_webhook(body)
        return webhook_event(data, fallback_id=f"sha256-{digest.hexdigest()[:32]}")


class WebhookEndpoint:
    """`POST /webhook` as a plain ASGI app: the body read up to its limit, verified, queued, answered,
    without a Starlette `Request` or `Response` (with the router, about a fifth of the webhook's CPU in
    the profile; `service.direct_route` hands it the request). Settings, the verifier and the queue
    come from the lifespan's state, as handlers' `request.state` does."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["state"]
        status, content = await self._handle(state, scope["headers"], receive)
        body = content if type(content) is bytes else _JSON.encode(content).encode()
        headers = [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(
        self, state: dict[str, Any], headers: list[tuple[bytes, bytes]], receive: Receive
    ) -> tuple[int, dict[str, str] | bytes]:
        settings = state["settings"]
        limit = settings.warden_max_body_bytes
        authorization, declared = None, b""
        for name, value in headers:  # the first of each, as Starlette's `Headers.get` reads them
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and not declared:
                declared = value
        try:
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge
            message = await receive()  # the usual webhook's whole body, in one message
            if message["type"] != "http.request":
                raise ClientDisconnect
            body: bytes = message.get("body", b"")
            if len(body) > limit:
                raise BodyTooLarge
            if message.get("more_body", False):
                body = await _rest_of_body(receive, body, limit)
            event = state["verifier"].verify(body, authorization)
        except BodyTooLarge:
            count_webhook("unknown", "too_large")
            return 413, {"error": f"body over {limit} bytes"}
        except InvalidWebhook as exc:
            log.warning("webhook rejected: %s", exc)
            count_webhook("unknown", "unauthorized")
            return 401, {"error": str(exc)}
        except MalformedEvent as exc:
            log.warning("webhook rejected: %s", exc)
            count_webhook("unknown", "malformed")
            return 400, {"error": str(exc)}
        # A canary's room is read whatever WARDEN_ROOMS says: its webhooks tell the canary the agent came.
        kind, event_id, room_name = event["kind"], event["id"], event["room_name"]
        if room_name and not settings.watches(room_name) and not is_canary_room(room_name):
            count_webhook(kind, "ignored")
            return 200, {"status": "ignored", "reason": "room not in WARDEN_ROOMS", "id": event_id}
        try:
            queued = await queue_webhook(state["enqueuer"], event_id, event, time.time())
        except (RedisError, OSError, TimeoutError) as exc:
            log.error("queue unavailable, answering 503 so that LiveKit retries: %s", type(exc).__name__)
            count_webhook(kind, "unavailable")
            return 503, {"error": "queue unavailable, retry later"}
        if queued:
            count_webhook(kind, "queued")
            return 200, b"".join((_QUEUED, _encode_string(event_id).encode(), b"}"))
        count_webhook(kind, "duplicate")
        return 200, {"status": "duplicate", "id": event_id}


async def _rest_of_body(receive: Receive, body: bytes, limit: int) -> bytes:
    """The rest of a body that came in several messages (`body`: the first), refused as soon as what
    has arrived is over `limit` bytes (a chunked body has no `Content-Length`); `ClientDisconnect` if
    the client goes away first (`service.body_reading` tells it in one line), as Starlette's
    `Request.stream` raises it."""
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
