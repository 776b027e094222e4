"""`POST /webhook` answers with the bytes and headers Starlette's `JSONResponse` writes for the same
content, whichever way the endpoint builds them (the usual "queued" answer is written without a dict)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import jwt
import pytest
from starlette.responses import JSONResponse

from service.intake.body import loads_webhook
from service.intake.webhook import WebhookEndpoint, WebhookVerifier
from tests.support.helpers import body, person, sign
from tests.support.settings import KEY, SECRET, make_settings
from workers.adapters.webhook import webhook_event


class Queue:
    def __init__(self, queued: bool) -> None:
        self.queued = queued

    async def enqueue(self, *args: Any, **kwargs: Any) -> bool:
        return self.queued


def answer(
    raw: bytes, token: str, *, queued: bool = True, rooms: str = ""
) -> tuple[int, dict[bytes, bytes], bytes]:
    settings = make_settings(warden_rooms=rooms)
    state = {"settings": settings, "verifier": WebhookVerifier(settings.api_keys), "enqueuer": Queue(queued)}
    headers = [(b"authorization", token.encode()), (b"content-length", str(len(raw)).encode())]
    scope = {"type": "http", "method": "POST", "path": "/webhook", "headers": headers, "state": state}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(WebhookEndpoint()(scope, receive, send))
    start, content = sent
    return start["status"], dict(start["headers"]), content["body"]


def as_starlette(status: int, content: dict[str, str]) -> tuple[int, dict[bytes, bytes], bytes]:
    response = JSONResponse(content, status_code=status)
    return status, dict(response.raw_headers), bytes(response.body)


@pytest.mark.parametrize("event_id", ["EV_abc123", 'EV_ünïcode_"quoted"\\_/', ""])
@pytest.mark.parametrize("queued", [True, False])
def test_a_queued_or_duplicate_webhook_is_answered_as_json_response_would(
    event_id: str, queued: bool
) -> None:
    raw = body(
        "participant_joined",
        id=event_id,
        created_at=1767225600,
        room="call-1",
        sid="RM_1",
        participant=person("user-1"),
    )
    status, headers, content = answer(raw, sign(raw, KEY, SECRET), queued=queued)
    # no id, or an odd one, is answered with Warden's own (`workers.core.bounds.event_id`)
    fallback = "sha256-" + hashlib.sha256(raw).hexdigest()[:32]
    expected_id = webhook_event(loads_webhook(raw), fallback_id=fallback)["id"]
    expected = {"status": "queued" if queued else "duplicate", "id": expected_id}
    assert (status, headers, content) == as_starlette(200, expected)


def test_refusals_and_ignored_rooms_are_answered_as_json_response_would() -> None:
    raw = body(
        "participant_joined",
        id="EV_1",
        created_at=1767225600,
        room="call-1",
        sid="RM_1",
        participant=person("user-1"),
    )
    ignored = {"status": "ignored", "reason": "room not in WARDEN_ROOMS", "id": "EV_1"}
    assert answer(raw, sign(raw, KEY, SECRET), rooms="other-*") == as_starlette(200, ignored)
    unsigned = answer(raw, sign(b"another body", KEY, SECRET))
    assert unsigned == as_starlette(401, {"error": "body does not match the token's sha256"})


@pytest.mark.parametrize("claim", ["é", "not base64!", "YW=J"])
def test_a_signed_token_whose_sha256_claim_is_not_base64_is_answered_401(claim: str) -> None:
    raw = body("participant_joined", id="EV_1", created_at=1767225600, room="call-1", sid="RM_1")
    token = jwt.encode(
        {"iss": KEY, "exp": int(time.time()) + 600, "sha256": claim}, SECRET, algorithm="HS256"
    )
    assert answer(raw, token) == as_starlette(401, {"error": "token's sha256 claim is not base64"})
