"""Job ids that input cannot take (issue 24): every job id carries its kind, and a webhook's is its
event's id in LiveKit's form (`EV_…`) or a hash of any other, so a signed webhook whose id is shaped like
another job's (a room's deadline, an escalation, a heartbeat, a re-run, one of ARQ's crons) is queued
under a webhook id of its own and takes nobody's: the room's deadline still fires."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from arq.jobs import Job

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.harness import AGENT, ROOM, SID, harness
from tests.support.helpers import body, person, sign
from tests.support.settings import KEY, SECRET, make_settings
from workers.jobs.runtime.context import context
from workers.queue.jobs import APPLY_WEBHOOK, function_of

QUEUE = "warden:queue"
HASHED = re.compile(r"webhook:sha256-id-[0-9a-f]{32}")
SHAPED = [
    f"deadline:{SID}:1",  # a room's first deadline
    "escalate:EV_1#0",  # an escalation step
    "heartbeat:call-42:agent-1:1700000000",  # a heartbeat, as the previous version named them
    "retry:webhook:EV_1:1",  # an operator's re-run
    "cron:sweep:1700000000000",  # one of ARQ's crons
    "webhook:EV_1",  # a webhook's own, prefixed once more
    "EV_1#0",  # an action's row in the event log
    f"deadline_passed:{SID}:1",  # the event a deadline records
    "EV_" + "a" * 61,  # LiveKit's prefix, one character too many
    "EV_1 2",
    "EV_\u202e1",
    "ev_1",
]


async def _queued(redis_url: str) -> list[str]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return [m.decode() for m in await client.zrange(QUEUE, 0, -1)]
    finally:
        await client.aclose()


@pytest.fixture
async def web(redis_url: str, tmp_path: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(redis_url=redis_url, database_url=f"sqlite:///{tmp_path}/w.db")
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def _post(client: httpx.AsyncClient, raw: bytes) -> httpx.Response:
    return await client.post("/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)})


@pytest.mark.parametrize("event_id", SHAPED)
async def test_a_webhook_id_shaped_like_another_jobs_is_queued_under_a_webhook_id_of_its_own(
    web: httpx.AsyncClient, redis_url: str, event_id: str
) -> None:
    raw = body("room_started", id=event_id, created_at=int(time.time()), room=ROOM, sid=SID)
    response = await _post(web, raw)
    assert response.status_code == 200 and response.json()["status"] == "queued"
    (queued,) = await _queued(redis_url)
    assert HASHED.fullmatch(queued), queued
    hashed = "sha256-id-" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    assert queued == f"webhook:{hashed}" == f"webhook:{response.json()['id']}"
    assert function_of(queued) == APPLY_WEBHOOK
    again = await _post(web, raw)  # LiveKit's retry hashes to the same id: one job
    assert (again.json()["status"], await _queued(redis_url)) == ("duplicate", [queued])


async def test_an_id_in_livekits_form_is_kept_as_it_is(web: httpx.AsyncClient, redis_url: str) -> None:
    raw = body("room_started", id="EV_aZ09_-", created_at=int(time.time()), room=ROOM, sid=SID)
    assert (await _post(web, raw)).json() == {"status": "queued", "id": "EV_aZ09_-"}
    assert await _queued(redis_url) == ["webhook:EV_aZ09_-"]


async def test_a_webhook_with_a_deadlines_id_does_not_take_the_rooms_deadline(
    redis_url: str, database_url: str
) -> None:
    async with harness(redis_url, database_url) as h:
        app = create_app(context(h.ctx).settings)
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            # Signed with the webhook key, before anyone joins: it would have taken deadline:RM_42:1.
            raw = body(
                "room_started", id=f"deadline:{SID}:1", created_at=int(h.clock.now), room=ROOM, sid=SID
            )
            assert (await _post(client, raw)).status_code == 200
        h.fake.join(ROOM, "alice")
        await h.send("participant_joined", participant=person("alice"))
        assert await h.timers() == [f"deadline:{SID}:1"]
        timer = await Job(f"deadline:{SID}:1", h.queue, _queue_name=QUEUE).info()
        assert timer is not None and (timer.function, timer.args) == ("on_deadline", (SID, 1))
        await h.fire()  # the join SLA passes: the room's own timer runs, and an agent is dispatched
        assert h.fake.created == [(ROOM, AGENT)]
