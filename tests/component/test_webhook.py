"""POST /webhook with tokens really signed by livekit-api, against a real Redis queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.helpers import body, fixture, sign
from tests.support.settings import KEY, SECRET, make_settings

QUEUE = "warden:queue"


@pytest.fixture
async def intake(redis_url: str, tmp_path: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        redis_url=redis_url,
        database_url=f"sqlite:///{tmp_path}/w.db",
        livekit_keys="oldkey: an-old-secret-still-accepted-during-rotation",
        warden_rooms="call-*,mytestroom,Demo Room",
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def queued(redis_url: str) -> list[str]:
    """Job ids waiting in Warden's queue."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        return [m.decode() for m in await client.zrange(QUEUE, 0, -1)]
    finally:
        await client.aclose()


async def post(client: httpx.AsyncClient, raw: bytes, token: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/webhook+json"}
    if token is not None:
        headers["Authorization"] = token
    return await client.post("/webhook", content=raw, headers=headers)


async def test_signed_webhook_is_queued_once_under_its_event_ids_job_id(
    intake: httpx.AsyncClient, redis_url: str
) -> None:
    raw = fixture("participant_joined_agent")
    first = await post(intake, raw, sign(raw, KEY, SECRET))
    assert (first.status_code, first.json()) == (200, {"status": "queued", "id": "EV_partAbc123xyz"})
    retry = await post(
        intake, raw, "Bearer " + sign(raw, KEY, SECRET)
    )  # LiveKit's retry; Bearer accepted too
    assert (retry.status_code, retry.json()["status"]) == (200, "duplicate")
    assert await queued(redis_url) == ["webhook:EV_partAbc123xyz"]


async def test_body_with_go_spaces_verifies_over_its_raw_bytes(
    intake: httpx.AsyncClient, redis_url: str
) -> None:
    raw = fixture("real_node_sdk_room_started_spaced")
    assert b", " in raw
    response = await post(intake, raw, sign(raw, KEY, SECRET))
    assert response.status_code == 200
    # This body has no id; its identity is the hash of its bytes, so a retry still dedupes.
    assert response.json()["id"].startswith("sha256-")
    assert await queued(redis_url) == ["webhook:" + response.json()["id"]]


async def test_rotated_key_from_livekit_keys_is_accepted(intake: httpx.AsyncClient, redis_url: str) -> None:
    raw = fixture("real_python_sdk_room_started")
    response = await post(intake, raw, sign(raw, "oldkey", "an-old-secret-still-accepted-during-rotation"))
    assert response.status_code == 200
    assert await queued(redis_url) == ["webhook:EV_eugWmGhovZmm"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "missing Authorization token"),
        ("wrong secret", "token signature does not verify"),
        ("unknown key", "token signed with an unknown API key"),
        ("tampered body", "body does not match the token's sha256"),
        ("expired", "token expired"),
        ("not a jwt", "Authorization is not a JWT"),
    ],
)
async def test_unverifiable_webhook_is_401_and_not_queued(
    intake: httpx.AsyncClient, redis_url: str, case: str, reason: str
) -> None:
    raw = fixture("participant_joined_standard")
    token = {
        "unsigned": None,
        "wrong secret": sign(raw, KEY, "some-other-secret-of-enough-length-xx"),
        "unknown key": sign(raw, "stranger", SECRET),
        "tampered body": sign(raw, KEY, SECRET),
        "expired": sign(raw, KEY, SECRET, ttl=timedelta(minutes=-5)),
        "not a jwt": "not-a-token",
    }[case]
    sent = raw.replace(b"user-123", b"user-666") if case == "tampered body" else raw
    response = await post(intake, sent, token)
    assert (response.status_code, response.json()) == (401, {"error": reason})
    assert await queued(redis_url) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'{"foo": 1}',
        b"\xff\xfe",
        b'{"event": 5}',
        # a lone surrogate where an enum's name goes: protobuf's parser fails with a SystemError
        b'{"event": "participant_joined", "participant": {"identity": "a", "state": "\\ud800"}}',
    ],
)
async def test_signed_garbage_is_400_and_not_queued(
    intake: httpx.AsyncClient, redis_url: str, raw: bytes
) -> None:
    response = await post(intake, raw, sign(raw, KEY, SECRET))
    assert response.status_code == 400
    assert await queued(redis_url) == []


async def test_oversized_body_is_413_and_not_queued(intake: httpx.AsyncClient, redis_url: str) -> None:
    raw = body("participant_joined", id="EV_big", created_at=1, metadata="x" * (1024 * 1024))
    response = await post(intake, raw, sign(raw, KEY, SECRET))
    assert response.status_code == 413
    assert await queued(redis_url) == []


def chunked(raw: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """`raw` sent in chunks of `size` bytes, with no Content-Length (chunked transfer encoding)."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), size):
            yield raw[start : start + size]

    return chunks()


async def test_chunked_body_without_length_is_read_whole_or_413_over_the_limit(
    intake: httpx.AsyncClient, redis_url: str
) -> None:
    raw = fixture("participant_joined_agent")
    headers = {"Authorization": sign(raw, KEY, SECRET)}
    response = await intake.post("/webhook", content=chunked(raw, 64), headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "queued")
    big = body("participant_joined", id="EV_big", created_at=1, metadata="x" * (1024 * 1024))
    response = await intake.post(
        "/webhook", content=chunked(big), headers={"Authorization": sign(big, KEY, SECRET)}
    )
    assert response.status_code == 413
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert await queued(redis_url) == ["webhook:EV_partAbc123xyz"]


async def test_unknown_event_type_is_accepted_and_recorded(intake: httpx.AsyncClient, redis_url: str) -> None:
    raw = body("agent_session_summarised", id="EV_future", created_at=1)
    response = await post(intake, raw, sign(raw, KEY, SECRET))
    assert (response.status_code, response.json()["status"]) == (200, "queued")
    assert await queued(redis_url) == ["webhook:EV_future"]


async def test_room_outside_warden_rooms_is_acknowledged_but_not_queued(
    intake: httpx.AsyncClient, redis_url: str
) -> None:
    raw = body("participant_joined", id="EV_other", created_at=1, room="lobby")
    response = await post(intake, raw, sign(raw, KEY, SECRET))
    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert await queued(redis_url) == []


async def test_queue_down_is_503_never_200(tmp_path: object) -> None:
    from devtools.embedded_redis import free_port

    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", database_url=f"sqlite:///{tmp_path}/w.db"
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        raw = fixture("participant_joined_agent")
        response = await post(client, raw, sign(raw, KEY, SECRET))
        assert response.status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["redis"].startswith("unreachable")
        assert (await client.get("/healthz")).status_code == 200


def _count(metrics: str, event: str, verdict: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'warden_webhooks_total{{event="{event}",verdict="{verdict}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_webhooks_by_type_and_verdict(intake: httpx.AsyncClient) -> None:
    before = (await intake.get("/metrics")).text
    raw = fixture("participant_joined_standard")
    await post(intake, raw, sign(raw, KEY, SECRET))
    await post(intake, raw, sign(raw, KEY, SECRET))
    await post(intake, raw, None)
    after = (await intake.get("/metrics")).text
    assert _count(after, "participant_joined", "queued") - _count(before, "participant_joined", "queued") == 1
    assert (
        _count(after, "participant_joined", "duplicate") - _count(before, "participant_joined", "duplicate")
        == 1
    )
    assert _count(after, "unknown", "unauthorized") - _count(before, "unknown", "unauthorized") == 1


@pytest.mark.parametrize(
    ("token_for", "reason"),
    [
        (
            lambda raw: sign(raw, KEY, "some-other-secret-of-enough-length-xx"),
            "token signature does not verify",
        ),
        (lambda raw: sign(raw, "stranger", SECRET), "token signed with an unknown API key"),
        (lambda raw: sign(raw, KEY, SECRET, ttl=timedelta(minutes=-5)), "token expired"),
        (lambda raw: "not-a-token", "Authorization is not a JWT"),
    ],
)
async def test_with_a_single_key_the_token_is_decoded_once_and_still_refused_clearly(
    redis_url: str, tmp_path: object, token_for: object, reason: str
) -> None:
    settings = make_settings(redis_url=redis_url, database_url=f"sqlite:///{tmp_path}/w.db")
    assert list(settings.api_keys) == [KEY]
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        raw = fixture("participant_joined_standard")
        response = await post(client, raw, token_for(raw))  # type: ignore[operator]
        assert (response.status_code, response.json()) == (401, {"error": reason})
        good = await post(client, raw, sign(raw, KEY, SECRET))
        assert good.status_code == 200
    assert await queued(redis_url) == ["webhook:EV_partAbc123xyz"]


async def test_one_round_trip_enqueue_stores_what_arq_would(redis_url: str) -> None:
    from arq.connections import ArqRedis
    from arq.jobs import Job, JobStatus

    from workers.queue.enqueue import Enqueuer

    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        assert await enqueuer.enqueue("apply_webhook", "EV_ours", {"id": "EV_ours"}, 1.5) is True
        await redis.enqueue_job("apply_webhook", {"id": "EV_arqs"}, 1.5, _job_id="EV_arqs", _queue_name=QUEUE)
        ours = await Job("EV_ours", redis, _queue_name=QUEUE).info()
        arqs = await Job("EV_arqs", redis, _queue_name=QUEUE).info()
        assert ours is not None and arqs is not None
        assert (ours.function, ours.args[1:], ours.kwargs, ours.job_try) == (
            arqs.function,
            arqs.args[1:],
            arqs.kwargs,
            arqs.job_try,
        )
        assert await Job("EV_ours", redis, _queue_name=QUEUE).status() == JobStatus.queued
        assert abs(await redis.pttl("arq:job:EV_ours") - await redis.pttl("arq:job:EV_arqs")) < 5_000
        assert await enqueuer.enqueue("apply_webhook", "EV_ours", {}, 2.0) is False  # queued already
        await redis.delete("arq:job:EV_ours")
        await redis.set("arq:result:EV_ours", b"done")
        assert await enqueuer.enqueue("apply_webhook", "EV_ours", {}, 2.0) is False  # done, result kept
        # Deferred, as a deadline is: scored at its time, and the key outlives it as ARQ's would.
        at = datetime.now(UTC) + timedelta(hours=2)
        assert await enqueuer.enqueue("on_deadline", "dl_ours", "RM_1", 1, defer_until=at.timestamp()) is True
        await redis.enqueue_job(
            "on_deadline", "RM_1", 1, _job_id="dl_arqs", _queue_name=QUEUE, _defer_until=at
        )
        assert abs(await redis.zscore(QUEUE, "dl_ours") - await redis.zscore(QUEUE, "dl_arqs")) < 5_000
        assert abs(await redis.pttl("arq:job:dl_ours") - await redis.pttl("arq:job:dl_arqs")) < 5_000
        assert await Job("dl_ours", redis, _queue_name=QUEUE).status() == JobStatus.deferred
    finally:
        await redis.aclose()
