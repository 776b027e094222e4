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
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from livekit.protocol.agent_dispatch import AgentDispatch

from service.dev.embedded_redis import EmbeddedRedis
from service.simulator.livekit import FakeLiveKit
from service.simulator.serving import serve
from tests.support.helpers import body, person, sign
from tests.support.processes import run_warden
from tests.support.settings import KEY, SECRET

ROOMS = int(os.environ.get("BENCH_ROOMS", "200"))
SLA = float(os.environ.get("BENCH_SLA", "10"))
SPREAD = float(os.environ.get("BENCH_SPREAD", "0"))  # seconds over which the rooms' people arrive
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
CONCURRENCY = 20
# BENCH_PROFILE=<file>: run the (first) worker under tests.bench.profile_worker, its stacks saved to <file>
PROFILE = os.environ.get("BENCH_PROFILE", "")


@dataclass
class ReactionRun:
    rooms: int
    spread: float
    workers: int
    sla: float
    delays: list[float]  # seconds from each room's SLA expiry to its first CreateDispatch, sorted
    worker_cpu: float = (
        0.0  # the workers' user+system CPU seconds from the first webhook to the last dispatch
    )

    def ms(self, q: int) -> float:
        return statistics.quantiles(self.delays, n=100, method="inclusive")[q - 1] * 1000


def measure(rooms: int, spread: float, sla: float, workers: int, database_url: str | None) -> ReactionRun:
    return asyncio.run(_run(rooms, spread, sla, workers, database_url))


async def _run(rooms: int, spread: float, sla: float, workers: int, database_url: str | None) -> ReactionRun:
    fake = FakeLiveKit(KEY, SECRET)
    first_dispatch: dict[str, float] = {}
    all_dispatched = asyncio.Event()

    def on_dispatch(dispatch: AgentDispatch) -> None:
        first_dispatch.setdefault(dispatch.room, time.time())
        if len(first_dispatch) == rooms:
            all_dispatched.set()

    fake.on_dispatch = on_dispatch
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_server:
        async with serve(fake.app) as livekit_url, httpx.AsyncClient(timeout=30) as client:
            database = database_url or f"sqlite:///{tmp}/w.db"
            env = {
                "REDIS_URL": redis_server.url,
                "DATABASE_URL": database,
                "LIVEKIT_URL": livekit_url,
                "WARDEN_AGENT_NAME": "notetaker",
                "WARDEN_JOIN_SLA_SECONDS": str(sla),
                "WARDEN_LOG_LEVEL": "WARNING",
            }
            argv = {"worker": [sys.executable, "-m", "tests.bench.profile_worker"]} if PROFILE else {}
            with run_warden(Path(tmp), argv, **env) as warden:
                deadlines: dict[str, float] = {}
                gate = asyncio.Semaphore(CONCURRENCY)

                warden.argv.clear()
                for _ in range(workers - 1):
                    warden.start("worker")
                processes = [psutil.Process(p.pid) for p, _ in warden.running["worker"]]

                def cpu() -> float:
                    return sum(sum(p.cpu_times()[:2]) for p in processes)

                cpu_before = cpu()

                async def join(i: int) -> None:
                    await asyncio.sleep(spread * i / rooms)
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
                    deadlines[room] = created + sla

                await asyncio.gather(*(join(i) for i in range(rooms)))
                await asyncio.wait_for(all_dispatched.wait(), timeout=sla + 120)
                worker_cpu = cpu() - cpu_before
    delays = sorted(first_dispatch[room] - deadlines[room] for room in deadlines)
    return ReactionRun(rooms, spread, workers, sla, delays, worker_cpu)


def main() -> None:
    database = os.environ.get("BENCH_DATABASE_URL")
    run = measure(ROOMS, SPREAD, SLA, WORKERS, database)
    ms = [f"{value:.0f}" for value in (run.ms(50), run.ms(99), run.delays[-1] * 1000, run.delays[0] * 1000)]
    ms.append(f"{run.worker_cpu * 1000 / run.rooms:.1f}")
    print(
        "| rooms | arrivals over s | workers | database | SLA s | p50 ms | p99 ms | max ms | min ms "
        "| worker CPU ms/room |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    name = "PostgreSQL" if database else "SQLite"
    print(f"| {ROOMS} | {SPREAD:g} | {WORKERS} | {name} | {SLA:g} | {' | '.join(ms)} |")


if __name__ == "__main__":
    main()
