"""Web and worker started from the Procfile, on real Redis and a real database: events in, rooms out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from tests.support.helpers import fixture, sign
from tests.support.processes import Warden, run_warden
from tests.support.settings import KEY, SECRET
from workers.queue.jobs import webhook_job_id

QUEUE = "warden:queue"


@pytest.fixture
def warden(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Warden]:
    with run_warden(
        tmp_path, REDIS_URL=redis_url, DATABASE_URL=database_url, WARDEN_AGENT_NAME="my-agent"
    ) as w:
        yield w


def with_id(name: str, event_id: str, **replace: str) -> bytes:
    """A recorded body with its id (shared by several samples) made unique; other bytes unchanged."""
    raw = fixture(name)
    raw = raw.replace(b'"id":"EV_partAbc123xyz"', f'"id":"{event_id}"'.encode())
    raw = raw.replace(b'"id":"EV_roomAbc123xyz"', f'"id":"{event_id}"'.encode())
    raw = raw.replace(b'"id":"EV_tracAbc123xyz"', f'"id":"{event_id}"'.encode())
    for old, new in replace.items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


async def deliver(client: httpx.AsyncClient, raw: bytes) -> str:
    response = await client.post("/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def test_room_life_out_of_order_and_duplicated_ends_right(warden: Warden, redis_url: str) -> None:
    bodies = [
        with_id("room_started", "EV_r1"),
        # alice's leave (at ...610) is delivered before her join (at ...605)
        with_id("participant_left", "EV_left", **{'"createdAt":"1767225605"': '"createdAt":"1767225610"'}),
        with_id("participant_joined_standard", "EV_join"),
        with_id("participant_joined_agent", "EV_agent"),
        with_id("track_published", "EV_track"),
    ]
    queue = ArqRedis.from_url(redis_url)
    try:
        async with httpx.AsyncClient(base_url=warden.url) as client:
            ids = [await deliver(client, raw) for raw in bodies]
            again = await client.post(
                "/webhook", content=bodies[2], headers={"Authorization": sign(bodies[2], KEY, SECRET)}
            )
            assert again.json()["status"] == "duplicate"
            outcomes = [
                await Job(webhook_job_id(i), queue, _queue_name=QUEUE).result(timeout=20) for i in ids
            ]
            # The worker runs jobs concurrently, so which ones found an older event late varies.
            assert set(outcomes) <= {"applied", "refolded"}
            room = (await client.get("/api/rooms/call-42")).json()
    finally:
        await queue.aclose()
    assert room["sid"] == "RM_x7Qk2mP9aZbC"
    assert room["state"] == "agent_active"
    assert room["people"] == []
    assert [(a["identity"], a["agent_name"]) for a in room["agents"]] == [
        ("agent-AJ_Fh3kLmNoPq12", "my-agent")
    ]
    # LiveKit's events in LiveKit's order. (Warden's decisions in between depend on which job ran first:
    # a join applied before the late leave arrives sets a join deadline, one applied after does not.)
    # All five share one second; the two joins are jobs the worker runs concurrently, and within a
    # second the order is the store's arrival (rule 5), so either join may come first. The leave,
    # delivered first but of a later second, comes last.
    webhooks = [(e["type"], e["participant"]) for e in room["timeline"] if e["source"] == "livekit"]
    assert webhooks[0] == ("room_started", None)
    assert sorted(webhooks[1:3]) == [
        ("participant_joined", "agent-AJ_Fh3kLmNoPq12"),
        ("participant_joined", "user-123"),
    ]
    assert webhooks[3:] == [("track_published", "agent-AJ_Fh3kLmNoPq12"), ("participant_left", "user-123")]
    logs = warden.log_text()
    assert "apply_webhook" in logs  # the worker really ran the jobs
    assert SECRET not in logs and "turnPassword" not in logs and "redacted" not in logs
