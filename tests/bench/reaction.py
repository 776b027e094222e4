"""Reaction benchmark: N rooms whose agent never comes; delay from SLA expiry to Warden's CreateDispatch.

Warden runs from its Procfile (release, web, one worker) on SQLite and a private redis-server, against
the stand-in LiveKit (`service/simulator/livekit.py`) served by this process. Every room gets one person at
once; the SLA runs from that webhook's `createdAt` (LiveKit's whole second), so the deadline of a
room is `createdAt + SLA`. Run with `make bench` (or `BENCH_ROOMS=1000 python -m tests.bench.reaction`).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from livekit.protocol.agent_dispatch import AgentDispatch

from service.embedded_redis import EmbeddedRedis
from service.simulator.livekit import FakeLiveKit
from service.simulator.serving import serve
from tests.conftest import KEY, SECRET
from tests.helpers import body, person, sign
from tests.processes import run_warden

ROOMS = int(os.environ.get("BENCH_ROOMS", "200"))
SLA = float(os.environ.get("BENCH_SLA", "10"))
SPREAD = float(os.environ.get("BENCH_SPREAD", "0"))  # seconds over which the rooms' people arrive
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
CONCURRENCY = 20


async def main() -> None:
    fake = FakeLiveKit(KEY, SECRET)
    first_dispatch: dict[str, float] = {}
    all_dispatched = asyncio.Event()

    def on_dispatch(dispatch: AgentDispatch) -> None:
        first_dispatch.setdefault(dispatch.room, time.time())
        if len(first_dispatch) == ROOMS:
            all_dispatched.set()

    fake.on_dispatch = on_dispatch
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_server:
        async with serve(fake.app) as livekit_url, httpx.AsyncClient(timeout=30) as client:
            database = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp}/w.db")
            env = {
                "REDIS_URL": redis_server.url,
                "DATABASE_URL": database,
                "LIVEKIT_URL": livekit_url,
                "WARDEN_AGENT_NAME": "notetaker",
                "WARDEN_JOIN_SLA_SECONDS": str(SLA),
                "WARDEN_LOG_LEVEL": "WARNING",
            }
            with run_warden(Path(tmp), **env) as warden:
                deadlines: dict[str, float] = {}
                gate = asyncio.Semaphore(CONCURRENCY)

                for _ in range(WORKERS - 1):
                    warden.start("worker")

                async def join(i: int) -> None:
                    await asyncio.sleep(SPREAD * i / ROOMS)
                    room = f"bench-{i}"
                    fake.join(room, "alice")
                    created = int(time.time())
                    raw = body(
                        "participant_joined",
                        id=f"EV_{i}",
                        created_at=created,
                        room=room,
                        sid=f"RM_{room}",  # as the stand-in LiveKit lists it (reconciliation)
                        participant=person("alice"),
                    )
                    async with gate:
                        response = await client.post(
                            f"{warden.url}/webhook",
                            content=raw,
                            headers={"Authorization": sign(raw, KEY, SECRET)},
                        )
                    assert response.status_code == 200
                    deadlines[room] = created + SLA

                await asyncio.gather(*(join(i) for i in range(ROOMS)))
                await asyncio.wait_for(all_dispatched.wait(), timeout=SLA + 120)
    delays = sorted(first_dispatch[room] - deadlines[room] for room in deadlines)
    q = statistics.quantiles(delays, n=100)
    database = "PostgreSQL" if "BENCH_DATABASE_URL" in os.environ else "SQLite"
    ms = [f"{value * 1000:.0f}" for value in (q[49], q[98], delays[-1], delays[0])]
    print("| rooms | arrivals over s | workers | database | SLA s | p50 ms | p99 ms | max ms | min ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {ROOMS} | {SPREAD:g} | {WORKERS} | {database} | {SLA:g} | {' | '.join(ms)} |")


if __name__ == "__main__":
    asyncio.run(main())
