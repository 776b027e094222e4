"""POST /api/rooms/{name}/heartbeat: who may say an agent is working, and what reaches the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from livekit.api import AccessToken, VideoGrants

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.settings import KEY, SECRET, make_settings
from workers.queue.jobs import agent_key


@pytest.fixture
async def web(redis_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        redis_url=redis_url, database_url=f"sqlite:///{tmp_path}/w.db", warden_admin_token="adm1n"
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def queued_heartbeats(redis_url: str) -> list[str]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return [m.decode().rsplit(":", 1)[0] for m in await client.zrange("warden:queue", 0, -1)]
    finally:
        await client.aclose()


def agent_token(room: str, identity: str = "agent-1", secret: str = SECRET) -> str:
    return AccessToken(KEY, secret).with_identity(identity).with_grants(VideoGrants(room=room)).to_jwt()


async def test_agent_token_for_the_room_is_accepted(web: httpx.AsyncClient, redis_url: str) -> None:
    response = await web.post(
        "/api/rooms/call-42/heartbeat", headers={"Authorization": f"Bearer {agent_token('call-42')}"}
    )
    assert (response.status_code, response.json()["identity"]) == (202, "agent-1")
    assert await queued_heartbeats(redis_url) == [f"heartbeat:{agent_key('call-42', 'agent-1')}"]


async def test_admin_token_needs_the_identity_in_the_body(web: httpx.AsyncClient, redis_url: str) -> None:
    headers = {"Authorization": "Bearer adm1n"}
    assert (await web.post("/api/rooms/call-42/heartbeat", headers=headers)).status_code == 400
    ok = await web.post("/api/rooms/call-42/heartbeat", headers=headers, json={"identity": "agent-9"})
    assert ok.status_code == 202
    assert await queued_heartbeats(redis_url) == [f"heartbeat:{agent_key('call-42', 'agent-9')}"]


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (agent_token("another-room"), 403),
        (agent_token("call-42", secret="not-the-secret-but-long-enough-for-hs256"), 401),
        ("nonsense", 401),
    ],
)
async def test_wrong_tokens_are_refused_and_nothing_is_queued(
    web: httpx.AsyncClient, redis_url: str, token: str, status: int
) -> None:
    response = await web.post("/api/rooms/call-42/heartbeat", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    assert await queued_heartbeats(redis_url) == []
