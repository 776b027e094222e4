"""Faults with real processes: Redis stopped while webhooks arrive; PostgreSQL restarted under load, and
between jobs. Each test stops or restarts a server of its own, never the run's shared ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.embedded_redis import EmbeddedRedis, free_port
from tests.support.helpers import body, person, sign
from tests.support.postgres import private_postgres
from tests.support.processes import run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from workers.jobs.runtime.retry import JOB_TIMEOUT_SECONDS


async def send_join(client: httpx.AsyncClient, room: str) -> int:
    """A signed participant_joined for `room`; the HTTP status Warden answered."""
    raw = body(
        "participant_joined",
        id=f"EV_{room}",
        created_at=int(time.time()),
        room=room,
        sid=f"RM_{room}",
        participant=person("alice"),
    )
    return (
        await client.post("/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)})
    ).status_code


async def test_redis_stopped_means_503_and_nothing_answered_200_is_lost_or_doubled(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    server = EmbeddedRedis(redis_dir, persist=True)  # production Redis keeps an append-only file
    server.start()
    accepted: list[str] = []
    refused = 0
    try:
        env = {
            "REDIS_URL": server.url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "WARDEN_JOIN_SLA_SECONDS": "600",
        }
        with run_warden(tmp_path, **env) as warden:
            async with httpx.AsyncClient(base_url=warden.url, timeout=10) as client:

                async def deliver(i: int) -> int:
                    status = await send_join(client, f"fault-{i}")
                    if status == 200:
                        accepted.append(f"fault-{i}")
                    return status

                assert {await deliver(i) for i in range(20)} == {200}
                server.stop()
                during = [await deliver(i) for i in range(20, 30)]
                refused = during.count(503)
                assert set(during) == {503}  # never 200 while the queue is down
                server.start()  # same port, same append-only file
                after = [await deliver(i) for i in range(30, 40)]
                assert set(after) == {200}

                async def all_processed() -> bool:
                    listed = (await client.get("/api/rooms", params={"limit": 200})).json()
                    return {r["name"] for r in listed["rooms"]} == set(accepted)

                # A job that was running when Redis went away runs again once ARQ's in-progress mark
                # expires (the job timeout plus 10 s).
                await wait_until(
                    all_processed, "every accepted event processed", timeout=JOB_TIMEOUT_SECONDS + 30
                )
                for name in accepted:
                    timeline = (await client.get(f"/api/rooms/{name}")).json()["timeline"]
                    assert [e["type"] for e in timeline if e["source"] == "livekit"] == ["participant_joined"]
    finally:
        server.stop()
    assert len(accepted) == 30 and refused == 10


@pytest.mark.postgres
async def test_postgresql_restarted_under_load_the_worker_recovers_alone(
    tmp_path: Path, redis_url: str
) -> None:
    """Restarts a PostgreSQL of this test's own (never the run's, which other tests are using) while
    webhooks flow."""
    with private_postgres(tmp_path / "pg") as postgres:
        env = {"REDIS_URL": redis_url, "DATABASE_URL": postgres.url, "WARDEN_JOIN_SLA_SECONDS": "600"}
        with run_warden(tmp_path, **env) as warden:
            async with httpx.AsyncClient(base_url=warden.url, timeout=10) as client:

                async def deliver(i: int) -> None:
                    assert await send_join(client, f"pg-{i}") == 200  # intake needs no database

                for i in range(10):
                    await deliver(i)
                restart = postgres.restart()
                for i in range(10, 40):  # under load while PostgreSQL goes down and comes back
                    await deliver(i)
                assert restart.wait(timeout=60) == 0

                async def all_processed() -> bool:
                    try:
                        listed = (await client.get("/api/rooms", params={"limit": 200})).json()
                    except ValueError:
                        return False
                    return {r["name"] for r in listed.get("rooms", [])} >= {f"pg-{i}" for i in range(40)}

                await wait_until(
                    all_processed, "every event processed after the restart", timeout=JOB_TIMEOUT_SECONDS + 60
                )


def _retried_webhooks(metrics: str) -> float:
    """How many times the worker's `/metrics` says a webhook job was put off to be tried again."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "warden_jobs_total"
        and sample.labels == {"function": "apply_webhook", "outcome": "retry"}
    )


@pytest.mark.postgres
async def test_postgresql_restarted_between_jobs_the_next_jobs_succeed_at_once(
    tmp_path: Path, redis_url: str
) -> None:
    """The pooled connections of the web and the worker all die with a restart of PostgreSQL (a private
    one); the next API read answers, and the next webhooks are applied on their first try, none put off,
    none a dead letter."""
    metrics_port = free_port()
    with private_postgres(tmp_path / "pg") as postgres:
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": postgres.url,
            "WARDEN_JOIN_SLA_SECONDS": "600",
            "WARDEN_WORKER_METRICS_PORT": str(metrics_port),
        }
        with run_warden(tmp_path, **env) as warden:
            async with httpx.AsyncClient(base_url=warden.url, timeout=10) as client:

                def processed(names: set[str]) -> Callable[[], Awaitable[bool]]:
                    async def check() -> bool:
                        listed = await client.get("/api/rooms", params={"limit": 200})
                        assert listed.status_code == 200, listed.text
                        return {r["name"] for r in listed.json()["rooms"]} >= names

                    return check

                before = {f"pg-{i}" for i in range(10)}
                assert {await send_join(client, name) for name in before} == {200}
                await wait_until(processed(before), "the first events processed", timeout=60)
                restart = postgres.restart()
                assert await asyncio.to_thread(restart.wait, 60) == 0
                after = {f"pg-{i}" for i in range(10, 20)}
                assert {await send_join(client, name) for name in after} == {200}
                await wait_until(
                    processed(before | after), "the events sent after the restart processed", timeout=60
                )
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as worker:
                    assert _retried_webhooks((await worker.get("/metrics")).text) == 0
                assert (await client.get("/api/dead-letters")).json() == {"dead_letters": []}
