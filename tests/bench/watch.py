"""Watch benchmark (issue 30): what canaries and liveness reads cost one worker at 1,000 live rooms.

Warden runs from its Procfile (release, web, one worker) against the stand-in LiveKit
(`devtools/simulator`) served by this process, with the defaults of both: a canary for the agent
(`WARDEN_CANARY_AGENTS`, every `5m`; the stand-in's worker brings the agent to each canary room) and
the liveness look at every room with people and an agent present (`WARDEN_LIVENESS_SECONDS` 15 s).
`BENCH_ROOMS` rooms (1,000) are opened through Warden's webhooks, each with a person and the agent,
which publishes its `lk.agent.state`; while the benchmark runs, each agent turns between `listening`
and `speaking` (a tenth of them each second), so that about half of the looks find a state changed
since the last (recorded, as news is) and half find nothing new (nothing written).

Beside that worker runs a second one, the same command on the same database with canaries and
liveness reads off (`WARDEN_CANARY_AGENTS` empty, `WARDEN_LIVENESS_SECONDS=0`) and a Redis database
of its own (its own queue and crons, none of the first's jobs). Everything else both do alike: the
sweep, reconciliation, discovery and retention, ARQ's polling. Over `ROUNDS` windows of `WINDOW`
seconds each, the share of one core the canaries and liveness reads cost is the first worker's CPU
(user+system) minus the second's, over the window. Both are measured over the same wall-clock window, so
the machine's other load touches both alike.

Run by `make bench` (`python -m tests.bench.run`), or `python -m tests.bench.run watch` alone (its section
of `results.md` replaced); this module alone prints its table: `BENCH_ROOMS=1000
[BENCH_DATABASE_URL=postgresql://...] python -m tests.bench.watch`. `BENCH_PROFILE=<file>` runs the
first worker under `tests.bench.profile_worker`.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from sqlalchemy import func, select

from devtools.embedded_redis import EmbeddedRedis
from devtools.simulator.agent_states import HEALTHY
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.processes import ROOT, procfile_argv, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.world import AGENT, World
from workers.core.room import Phase
from workers.settings import normalise_database_url
from workers.store.engine import make_engine
from workers.store.models import ROOMS

QUICK = os.environ.get("BENCH_QUICK") == "1"
WINDOW = 10.0 if not QUICK else 3.0  # seconds a round measures
ROUNDS = 3 if not QUICK else 2
CONCURRENCY = 20  # webhooks in flight while the rooms open
TURNS_PER_SECOND = 0.1  # the share of agents whose state turns each second
PROFILE = os.environ.get("BENCH_PROFILE", "")
_HERE = (Phase.AGENT_PRESENT.value, Phase.AGENT_ACTIVE.value)


@dataclass
class WatchRun:
    rooms: int
    database: str
    window: float  # seconds each round measured (wall clock)
    on_cpu: list[float]  # per round: the worker with canaries and liveness reads, CPU seconds
    off_cpu: list[float]  # per round: the worker without them, CPU seconds
    looks: list[int]  # per round: ListParticipants calls LiveKit answered (both workers')
    canaries: int  # canary runs LiveKit saw dispatched during the whole run

    @property
    def shares(self) -> list[float]:
        """Per round, the share of one core (percent) canaries and liveness reads cost."""
        return [(on - off) / self.window * 100 for on, off in zip(self.on_cpu, self.off_cpu, strict=True)]

    def figure(self) -> str:
        shares = self.shares
        return f"{min(shares):.1f}-{max(shares):.1f} % ({self.database}, {len(shares)} windows of {self.window:g} s)"

    def table(self) -> str:
        rows = [
            "| database | rooms | window s | with canaries + liveness: CPU % of a core | without: CPU % "
            "| difference: % of a core | ListParticipants/s (both workers) |",
            "|---" * 7 + "|",
        ]
        for on, off, share, looks in zip(self.on_cpu, self.off_cpu, self.shares, self.looks, strict=True):
            rows.append(
                f"| {self.database} | {self.rooms} | {self.window:g} | {on / self.window * 100:.1f} "
                f"| {off / self.window * 100:.1f} | {share:.1f} | {looks / self.window:.0f} |"
            )
        return "\n".join(rows)


def measure(rooms: int, database_url: str | None, database: str) -> WatchRun:
    return asyncio.run(_run(rooms, database_url, database))


async def _run(rooms: int, database_url: str | None, name: str) -> WatchRun:
    fake = FakeLiveKit(KEY, SECRET)
    fake.add_worker(AGENT, states=(HEALTHY,))  # brings the agent to each canary room
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_server:
        database = database_url or f"sqlite:///{tmp}/w.db"
        async with serve(fake.app) as livekit_url, httpx.AsyncClient(timeout=30) as client:
            env = {
                "REDIS_URL": redis_server.url,
                "DATABASE_URL": database,
                "LIVEKIT_URL": livekit_url,
                "WARDEN_AGENT_NAME": AGENT,
                "WARDEN_CANARY_AGENTS": AGENT,
                "WARDEN_LOG_LEVEL": "WARNING",
            }
            argv = {"worker": [sys.executable, "-m", "tests.bench.profile_worker"]} if PROFILE else {}
            with run_warden(Path(tmp), argv, **env) as warden:
                world = World(fake, warden, client)  # sends the stand-in's own webhooks (canaries')
                await _open_rooms(world, rooms)
                await _all_present(database, rooms)
                turning = asyncio.create_task(_turn_states(fake, rooms))
                off_env = {
                    **warden.env,
                    "REDIS_URL": _other_database(redis_server.url),
                    "WARDEN_CANARY_AGENTS": "",
                    "WARDEN_LIVENESS_SECONDS": "0",
                }
                with open(Path(tmp) / "off.log", "wb") as log:
                    off = subprocess.Popen(
                        procfile_argv("worker"), env=off_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                    )
                    try:
                        run = await _rounds(fake, warden.running["worker"][0][0].pid, off.pid, rooms, name)
                    finally:
                        turning.cancel()
                        off.terminate()
                        off.wait()
    return run


async def _open_rooms(world: World, rooms: int) -> None:
    """Each room: a person joins, then the agent (no state in its join, as livekit-agents), which then
    publishes `listening`; their webhooks sent to Warden."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        room, agent = f"watch-{i}", f"agent-{i}"
        webhooks = world.fake.join(room, "alice") + world.fake.join(room, agent, agent_name=AGENT)
        world.fake.set_state(room, agent, "listening")
        async with gate:
            await world.tell(room, webhooks)

    await asyncio.gather(*(one(i) for i in range(rooms)))


async def _all_present(database: str, rooms: int, timeout: float = 120.0) -> None:
    """Wait until Warden's rows show every room's agent present (the worker applied their webhooks)."""
    engine = make_engine(normalise_database_url(database))
    query = select(func.count()).select_from(ROOMS).where(ROOMS.c.phase.in_(_HERE))
    started = time.monotonic()
    try:
        while True:
            async with engine.connect() as connection:
                present = int(await connection.scalar(query) or 0)
            if present >= rooms:
                return
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"only {present} of {rooms} rooms with their agent present")
            await asyncio.sleep(0.2)  # another process works: polling the database is the only view
    finally:
        await engine.dispose()


async def _turn_states(fake: FakeLiveKit, rooms: int) -> None:
    """Each second, a tenth of the agents turn from `listening` to `speaking` or back."""
    rng = random.Random(30)
    states = ["listening"] * rooms
    while True:
        for i in rng.sample(range(rooms), max(1, int(rooms * TURNS_PER_SECOND))):
            states[i] = "speaking" if states[i] == "listening" else "listening"
            fake.set_state(f"watch-{i}", f"agent-{i}", states[i])
        await asyncio.sleep(1.0)


def _other_database(redis_url: str) -> str:
    """The same Redis server's database 1 (the second worker's queue and cron jobs, apart)."""
    base = redis_url.rstrip("/")
    head, _, tail = base.rpartition("/")
    return f"{head}/1" if tail.isdigit() and head.count("/") >= 2 else f"{base}/1"


async def _rounds(fake: FakeLiveKit, on_pid: int, off_pid: int, rooms: int, name: str) -> WatchRun:
    on, off = psutil.Process(on_pid), psutil.Process(off_pid)

    def cpu(process: psutil.Process) -> float:
        return sum(process.cpu_times()[:2])

    await asyncio.sleep(WINDOW / 2)  # the second worker's start-up, not measured
    on_cpu, off_cpu, looks = [], [], []
    elapsed = 0.0
    for _ in range(ROUNDS):
        started, on_before, off_before = time.monotonic(), cpu(on), cpu(off)
        calls = sum(1 for method, _ in fake.calls if method == "ListParticipants")
        await asyncio.sleep(WINDOW)
        elapsed = time.monotonic() - started
        # the same wall window for both; CPU read as the window ends
        on_cpu.append((cpu(on) - on_before) * WINDOW / elapsed)
        off_cpu.append((cpu(off) - off_before) * WINDOW / elapsed)
        looks.append(sum(1 for method, _ in fake.calls if method == "ListParticipants") - calls)
    canaries = sum(1 for room, _ in fake.created if room.startswith("warden-canary-"))
    return WatchRun(rooms, name, WINDOW, on_cpu, off_cpu, looks, canaries)


def main() -> None:
    database = os.environ.get("BENCH_DATABASE_URL")
    run = measure(int(os.environ.get("BENCH_ROOMS", "1000")), database, "PostgreSQL" if database else "SQLite")
    print(run.table())
    print(f"\ncanaries + liveness reads: {run.figure()}; canary runs: {run.canaries}")


if __name__ == "__main__":
    main()
