"""Webhook bodies and signatures exactly as livekit-server makes them (simulator, replay and tests),
`deliver`, which posts one as livekit-server does (retrying what it retries), and `InOrder`, which
sends the stand-in's own webhooks one after another."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from devtools.simulator.base import sid_for


def body(
    event: str, *, id: str, created_at: int, room: str = "call-42", sid: str = "RM_test", **extra: Any
) -> bytes:
    """A compact protojson body like livekit-server's."""
    data: dict[str, Any] = {
        "event": event,
        "room": {"sid": sid, "name": room},
        "id": id,
        "createdAt": str(created_at),
    }
    data.update(extra)
    return json.dumps(data, separators=(",", ":")).encode()


def person(identity: str, sid: str | None = None) -> dict[str, Any]:
    return {"sid": sid or f"PA_{identity}", "identity": identity, "state": "ACTIVE"}


def agent(identity: str, name: str = "notetaker", sid: str | None = None) -> dict[str, Any]:
    return {
        "sid": sid or f"PA_{identity}",
        "identity": identity,
        "state": "ACTIVE",
        "kind": "AGENT",
        "attributes": {"lk.agent.name": name, "lk.agent_name": name},  # the framework's, the server's
    }


def caller(identity: str, number: str, sid: str | None = None) -> dict[str, Any]:
    """A phone caller as livekit-server reports one (kind SIP, the number in its attributes)."""
    return {
        "sid": sid or sid_for("PA_", identity),
        "identity": identity,
        "state": "ACTIVE",
        "kind": "SIP",
        "attributes": {"sip.phoneNumber": number, "sip.callStatus": "active"},
    }


def avatar(identity: str, speaks_for: str, sid: str | None = None) -> dict[str, Any]:
    """An avatar worker: a second AGENT participant publishing on behalf of the agent `speaks_for`."""
    return {
        "sid": sid or f"PA_{identity}",
        "identity": identity,
        "state": "ACTIVE",
        "kind": "AGENT",
        "attributes": {"lk.publish_on_behalf": speaks_for},
    }


# livekit-server's delivery (../shared/LIVEKIT.md, "Delivery semantics"): up to 5 attempts, waiting 1,
# 2, 4 and 8 s between them; retried on transport errors, 429 and 5xx but 501; any other 4xx is final.
LIVEKIT_BACKOFF = (1.0, 2.0, 4.0, 8.0)


def retried(status: int) -> bool:
    return status == 429 or (status >= 500 and status != 501)


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    raw: bytes,
    headers: dict[str, str],
    *,
    backoff: tuple[float, ...] = LIVEKIT_BACKOFF,
) -> httpx.Response:
    """Post the webhook `raw` to `url` as livekit-server does: a connection the server closed as the
    request went out (a kept-alive connection's race), a refused connection, 429 or a 5xx is tried
    again after `backoff`'s waits. The last answer, or the last transport error once the tries are out."""
    for wait in (*backoff, None):
        try:
            answer = await client.post(url, content=raw, headers=headers)
        except httpx.TransportError:
            if wait is None:
                raise
        else:
            if wait is None or not retried(answer.status_code):
                return answer
        await asyncio.sleep(wait)
    raise AssertionError("unreachable: the last try returns or raises")


class InOrder:
    """An `on_webhook` for the stand-in: each webhook it announces is sent by `send(event, room, **fields)`,
    one at a time, in the order announced (livekit-server keeps a FIFO per room: a `track_unpublished`
    comes before its participant's `participant_left`). A send that raises is kept in `errors`."""

    def __init__(self, send: Callable[..., Awaitable[None]]) -> None:
        self._send = send
        self._queue: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self.errors: list[BaseException] = []

    def __call__(self, event: str, room: str, fields: dict[str, Any]) -> None:
        self._queue.append((event, room, fields))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:
            event, room, fields = self._queue.popleft()
            try:
                await self._send(event, room, **fields)
            except Exception as exc:  # kept for the test to see; the rest still go
                self.errors.append(exc)

    async def sent(self) -> None:
        """Wait until every webhook announced so far has been sent."""
        while self._task is not None and not self._task.done():
            await self._task
