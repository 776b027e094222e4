"""Lengths bounded at intake (issue 24), the same on SQLite and PostgreSQL: a megabyte-long identity,
room name, agent name or id is refused whole (400, nothing queued: Warden hands these back to LiveKit
and keys by them, so a clipped one would name another room or merge two people); one at its bound is
stored exactly; free text Warden only shows is clipped with a marker. A megabyte value that an older
version queued becomes a dead letter at once, and neither the API nor the dashboard serves megabytes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq.jobs import Job

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.harness import Harness, harness
from tests.support.helpers import agent, body, person, sign
from tests.support.settings import KEY, SECRET, make_settings
from workers.core.events import Event, EventKind, Participant, to_dict
from workers.jobs.delivery.dead_letters import DEAD
from workers.jobs.runtime.context import context
from workers.jobs.runtime.worker import worker_settings
from workers.queue.jobs import APPLY_WEBHOOK

QUEUE = "warden:queue"
MB = 1024 * 1024
SMALL = 64 * 1024  # a page or an answer about one room or one dead letter is far smaller than this


def _joined(room: str = "call-1", sid: str = "RM_1", **participant: Any) -> bytes:
    """A join to `room`: alice's, with the participant's fields given (`participant_sid` for its sid)."""
    who = {**person("alice"), **participant}
    if "participant_sid" in who:
        who["sid"] = who.pop("participant_sid")
    return body(
        "participant_joined", id="EV_long", created_at=int(time.time()), room=room, sid=sid, participant=who
    )


# What LiveKit's webhook holds that Warden keeps exactly, each a megabyte long.
HUGE = {
    "participant.identity": lambda v: _joined(identity=v),
    "room.name": lambda v: _joined(room=v),
    "room.sid": lambda v: _joined(sid=v),
    "participant.sid": lambda v: _joined(participant_sid=v),
    "participant's agent name attribute": lambda v: _joined(**agent("agent-1", v)),
    "lk.publish_on_behalf": lambda v: _joined(attributes={"lk.publish_on_behalf": v}),
    "track.sid": lambda v: body(
        "track_published", id="EV_t", created_at=1, participant=person("alice"), track={"sid": v}
    ),
    "job.state.participantIdentity": lambda v: body(
        "agent_job_ended", id="EV_j", created_at=1, job={"id": "AJ_1", "state": {"participantIdentity": v}}
    ),
}


@pytest.fixture
async def web(redis_url: str, tmp_path: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        redis_url=redis_url, database_url=f"sqlite:///{tmp_path}/w.db", warden_max_body_bytes=4 * MB
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def _post(client: httpx.AsyncClient, raw: bytes) -> httpx.Response:
    return await client.post("/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)})


async def _queued(client_or_queue: Any) -> list[str]:
    return [m.decode() for m in await client_or_queue.zrange(QUEUE, 0, -1)]


@pytest.mark.parametrize("field", list(HUGE))
async def test_a_megabyte_value_warden_keeps_exactly_is_refused_whole(
    web: httpx.AsyncClient, redis_url: str, field: str
) -> None:
    from redis.asyncio import Redis

    response = await _post(web, HUGE[field]("x" * MB))
    assert response.status_code == 400 and len(response.content) < 300
    assert response.json()["error"].startswith(f"{field} is {MB} characters, over ")
    nul = await _post(web, HUGE[field]("a\x00b"))
    assert (nul.status_code, nul.json()["error"]) == (400, f"{field} is holding a NUL character" + _TAIL)
    redis = Redis.from_url(redis_url)
    try:
        assert await _queued(redis) == []
    finally:
        await redis.aclose()


_TAIL = ": refused whole, never clipped (see Warden's bounds)"


async def test_free_text_is_clipped_with_a_marker(web: httpx.AsyncClient, redis_url: str) -> None:
    from redis.asyncio import Redis

    unknown = body("x" * MB, id="EV_name", created_at=1)
    failed = body(
        "agent_job_ended", id="EV_err", created_at=1, job={"id": "AJ_1", "state": {"error": "e" * MB}}
    )
    assert [(await _post(web, raw)).status_code for raw in (unknown, failed)] == [200, 200]
    redis = Redis.from_url(redis_url)
    try:
        name = (await _queued_event(redis, "webhook:EV_name"))["name"]
        error = (await _queued_event(redis, "webhook:EV_err"))["job"]["error"]
    finally:
        await redis.aclose()
    assert name == "x" * 43 + f"…({MB - 43} more chars)" and len(name) == 64
    assert len(error) <= 1024 and error.startswith("eee") and error.endswith(" more chars)")


async def _queued_event(redis: Any, job_id: str) -> dict[str, Any]:
    info = await Job(job_id, redis, _queue_name=QUEUE).info()
    assert info is not None, job_id
    return dict(info.args[0])


@pytest.fixture
async def h(redis_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, database_url, warden_max_body_bytes=4 * MB) as ready:
        yield ready


async def test_values_at_their_bound_are_stored_exactly(h: Harness) -> None:
    name, identity = "n" * 255 + "é", "i" * 255 + "é"  # 256 characters each (257 bytes in UTF-8)
    async with serve(create_app(context(h.ctx).settings)) as url, httpx.AsyncClient(base_url=url) as api:
        assert (await _post(api, _joined(room=name, identity=identity))).status_code == 200
        (queued,) = await _queued(h.queue)
        assert await _run(h, queued, await _queued_event(h.queue, queued)) == "applied"
        found = (await api.get("/api/rooms/RM_1")).json()
        assert found["name"] == name and [p["identity"] for p in found["people"]] == [identity]


async def _run(h: Harness, job_id: str, event: dict[str, Any]) -> Any:
    """The worker's registered webhook job, dead letters and all, once."""
    (apply,) = [f for f in worker_settings(context(h.ctx).settings)["functions"] if f.name == APPLY_WEBHOOK]
    return await apply.coroutine({**h.ctx, "job_id": job_id, "job_try": 1}, event, time.time())


async def test_a_megabyte_value_an_older_version_queued_is_a_dead_letter_served_small(h: Harness) -> None:
    kind, person_ = EventKind.PARTICIPANT_JOINED, Participant("p" * MB, "PA_big", 0)
    event = Event("EV_old", kind, str(kind), int(time.time()), "RM_big", "r" * MB, person_)
    assert await _run(h, "EV_old", to_dict(event)) == DEAD  # queued before job ids had kinds
    async with serve(create_app(context(h.ctx).settings)) as url, httpx.AsyncClient(base_url=url) as api:
        (letter,) = (await api.get("/api/dead-letters")).json()["dead_letters"]
        assert (letter["id"], letter["room"]["sid"], letter["attempts"]) == ("EV_old", "RM_big", 1)
        assert len(letter["room"]["name"]) == 256 and letter["room"]["name"].endswith(" more chars)")
        assert f"its events.participant_identity is {MB} characters, over 256" in letter["error"]
        for path in ("/api/dead-letters", "/dead-letters", "/", "/api/rooms", "/api/rooms/RM_big"):
            served = await api.get(path)
            assert served.status_code in (200, 404) and len(served.content) < SMALL, (
                path,
                len(served.content),
            )
