"""Reaction benchmark: N rooms whose agent never comes; delay from SLA expiry to Warden's CreateDispatch.

Warden runs from its Procfile (release, web, one worker) on SQLite and a private redis-server, against
the stand-in LiveKit (`devtools/simulator/livekit.py`) served by this process. Every room gets one person at
once; the SLA runs from that webhook's `createdAt` (LiveKit's whole second), so the deadline of a
room is `createdAt + SLA`. Run with `make bench` (or `BENCH_ROOMS=1000 python -m tests.bench.reaction`).

`BENCH_OUTAGE=1` makes it an outage of a LiveKit Cloud agent (`WARDEN_CLOUD_AGENT_ID`, the stand-in's
CloudAgent API; its deployment asleep until `BENCH_COMES_BACK` seconds after `RestartAgent`), and
measures escalation: from the breach that makes the count reach `WARDEN_OUTAGE_ROOMS` (the moment the
worker recorded LiveKit's answer for that room, the `presence_observed` events in the database) to the
stand-in's `RestartAgent`, with every other room's job queued behind it; and recovery: from the
deployment reporting running replicas to each waiting room's next `CreateDispatch`.
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
from sqlalchemy import select

from devtools.embedded_redis import EmbeddedRedis
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.helpers import body, person, sign
from tests.support.processes import run_warden
from tests.support.settings import KEY, SECRET
from workers.settings import normalise_database_url
from workers.store.engine import make_engine
from workers.store.models import EVENTS

ROOMS = int(os.environ.get("BENCH_ROOMS", "200"))
SLA = float(os.environ.get("BENCH_SLA", "10"))
SPREAD = float(os.environ.get("BENCH_SPREAD", "0"))  # seconds over which the rooms' people arrive
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
CONCURRENCY = 20
# BENCH_PROFILE=<file>: run the (first) worker under tests.bench.profile_worker, its stacks saved to <file>
PROFILE = os.environ.get("BENCH_PROFILE", "")
OUTAGE = os.environ.get("BENCH_OUTAGE") == "1"
OUTAGE_ROOMS = 10  # WARDEN_OUTAGE_ROOMS
COMES_BACK = float(os.environ.get("BENCH_COMES_BACK", "5"))  # the deployment's restart takes this long
GRACE = 20.0  # WARDEN_RESTART_GRACE_SECONDS
LOGS = os.environ.get("BENCH_LOGS", "")  # a file the Warden processes' logs are copied to at the end


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
    restart_after: float | None = None  # outage: seconds from the threshold's breach to RestartAgent
    recovery: list[float] | None = None  # outage: seconds from the deployment back to each re-dispatch
    recovery_cpu: float = 0.0  # outage: the workers' CPU seconds from the deployment back to the last one

    def ms(self, q: int, values: list[float] | None = None) -> float:
        values = self.delays if values is None else values
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def measure(
    rooms: int, spread: float, sla: float, workers: int, database_url: str | None, outage: bool = False
) -> ReactionRun:
    return asyncio.run(_run(rooms, spread, sla, workers, database_url, outage))


async def _run(
    rooms: int, spread: float, sla: float, workers: int, database_url: str | None, outage: bool = False
) -> ReactionRun:
    fake = FakeLiveKit(KEY, SECRET)
    first_dispatch: dict[str, float] = {}
    after_back: dict[str, float] = {}  # outage: each room's first dispatch once the deployment is back
    all_dispatched, all_back = asyncio.Event(), asyncio.Event()
    restarted: list[float] = []

    def on_dispatch(dispatch: AgentDispatch) -> None:
        now = time.time()
        first_dispatch.setdefault(dispatch.room, now)
        if len(first_dispatch) == rooms:
            all_dispatched.set()
        if outage and now >= fake.back_at.get("CA_bench", float("inf")):
            after_back.setdefault(dispatch.room, now)
            if len(after_back) == rooms:
                all_back.set()

    fake.on_dispatch = on_dispatch
    fake.on_restart = lambda _agent_id: restarted.append(time.time())
    outage_env: dict[str, str] = {}
    if outage:
        fake.cloud_agents, fake.restart_takes = {"CA_bench": "notetaker"}, {"CA_bench": COMES_BACK}
        outage_env = {
            "WARDEN_CLOUD_AGENT_ID": "CA_bench",
            "WARDEN_OUTAGE_ROOMS": str(OUTAGE_ROOMS),
            "WARDEN_RESTART_GRACE_SECONDS": str(GRACE),
        }
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_server:
        async with serve(fake.app) as livekit_url, httpx.AsyncClient(timeout=30) as client:
            database = database_url or f"sqlite:///{tmp}/w.db"
            env = {
                "REDIS_URL": redis_server.url,
                "DATABASE_URL": database,
                "LIVEKIT_URL": livekit_url,
                "WARDEN_AGENT_NAME": "notetaker",
                "WARDEN_JOIN_SLA_SECONDS": str(sla),
                "WARDEN_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                **outage_env,
            }
            if outage:
                env["LK_AGENTS_URL"] = livekit_url
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

                async def cpu_at_back() -> float:
                    while "CA_bench" not in fake.back_at:
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(max(0.0, fake.back_at["CA_bench"] - time.time()))
                    return cpu()

                at_back = asyncio.create_task(cpu_at_back()) if outage else None
                await asyncio.gather(*(join(i) for i in range(rooms)))
                await asyncio.wait_for(all_dispatched.wait(), timeout=sla + 120)
                worker_cpu = cpu() - cpu_before
                if outage:
                    assert at_back is not None
                    await asyncio.wait_for(all_back.wait(), timeout=GRACE + 120)
                    recovery_cpu = cpu() - await at_back
                    crossed = await _breach(database, OUTAGE_ROOMS)
                if LOGS:
                    Path(LOGS).write_text(warden.log_text())
    delays = sorted(first_dispatch[room] - deadlines[room] for room in deadlines)
    run = ReactionRun(rooms, spread, workers, sla, delays, worker_cpu)
    if outage:
        run.restart_after = restarted[0] - crossed
        run.recovery = sorted(at - fake.back_at["CA_bench"] for at in after_back.values())
        run.recovery_cpu = recovery_cpu
        if PROFILE:
            back = fake.back_at["CA_bench"]
            print(f"recovery, for profile_report --between: {back:.1f} {max(after_back.values()):.1f}")
    return run


async def _breach(database: str, n: int) -> float:
    """When the `n`-th room's breach was recorded: the worker's time of LiveKit's answer for it."""
    engine = make_engine(normalise_database_url(database))
    try:
        async with engine.connect() as connection:
            query = (
                select(EVENTS.c.received_at)
                .where(EVENTS.c.kind == "presence_observed")
                .order_by(EVENTS.c.received_at)
                .limit(n)
            )
            return float(list((await connection.execute(query)).scalars())[-1])
    finally:
        await engine.dispose()


def main() -> None:
    database = os.environ.get("BENCH_DATABASE_URL")
    run = measure(ROOMS, SPREAD, SLA, WORKERS, database, OUTAGE)
    ms = [f"{value:.0f}" for value in (run.ms(50), run.ms(99), run.delays[-1] * 1000, run.delays[0] * 1000)]
    ms.append(f"{run.worker_cpu * 1000 / run.rooms:.1f}")
    print(
        "| rooms | arrivals over s | workers | database | SLA s | p50 ms | p99 ms | max ms | min ms "
        "| worker CPU ms/room |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    name = "PostgreSQL" if database else "SQLite"
    print(f"| {ROOMS} | {SPREAD:g} | {WORKERS} | {name} | {SLA:g} | {' | '.join(ms)} |")
    if run.restart_after is not None and run.recovery:
        after = run.restart_after * 1000
        print(f"\nRestartAgent {after:.0f} ms after the breach reaching {OUTAGE_ROOMS} rooms")
        print(
            f"re-dispatched after the deployment came back ({COMES_BACK:g} s after RestartAgent): "
            f"p50 {run.ms(50, run.recovery):.0f} ms, p99 {run.ms(99, run.recovery):.0f} ms, "
            f"max {run.recovery[-1] * 1000:.0f} ms; worker CPU {run.recovery_cpu * 1000 / run.rooms:.1f} ms "
            "a re-dispatched room"
        )


if __name__ == "__main__":
    main()
