"""Watch benchmark (issue 30): what canaries and liveness reads cost one worker at 1,000 live rooms.

Warden runs from its Procfile (release, web, one worker) against the stand-in LiveKit
(`devtools/simulator`) served by this process, with the defaults of both: a canary for the agent
(`WARDEN_CANARY_AGENTS`, every `5m`; the stand-in's worker brings the agent to each canary room) and
the liveness look at each room with people and an agent present (`WARDEN_LIVENESS_SECONDS`, 15 s).
`BENCH_ROOMS` rooms (1,000) are opened through Warden's webhooks, each with a person and the agent,
which then publishes its `lk.agent.state`: round a conversation's turn (`TURN`: 4 s listening, 1 s
thinking, 4 s speaking), each agent from a point of its own, so that nearly every look finds a state
other than the last one's.

Beside that worker runs a second one, the same command on the same database with canaries and
liveness reads off (`WARDEN_CANARY_AGENTS` empty, `WARDEN_LIVENESS_SECONDS=0`) and a Redis database
of its own (its own queue and crons, none of the first's jobs); the rest both do alike (the sweep,
discovery, retention, ARQ's polling). Reconciliation is off in both (`WARDEN_RECONCILE_SECONDS=3600`):
it is no part of the figure, and its runs, in both workers at once, cost them unlike amounts. After
`WARM_UP` seconds unmeasured (two liveness periods and a little: the first look at each room finds the
state its agent published after joining, news once, and it may come a whole period after the room
opened, the cron taking the rooms in turn by sid; the second is the first to find the room as recorded,
and the first after which the cron keeps what it read, `workers.jobs.rooms.looked`), over
`ROUNDS` windows of `WINDOW` seconds each, the share of one core the canaries and liveness reads cost
is the first worker's CPU (user+system) minus the second's, over the window. Both are read over the
same wall-clock window, so the machine's other load touches both alike.

Run by `make bench` (`python -m tests.bench.run`), or `python -m tests.bench.run watch` alone (its
section of `results.md` replaced); this module alone prints its table (`BENCH_ROOMS=1000
[BENCH_DATABASE=sqlite] python -m tests.bench.watch`; PostgreSQL when one answers, as `make bench`
finds it). `BENCH_PROFILE=<file>` runs the first worker under `tests.bench.profile_worker`, its stacks
from the first window on.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import func, select

from devtools.embedded_redis import EmbeddedRedis
from devtools.simulator.agent_states import HEALTHY
from devtools.simulator.livekit import FakeLiveKit, room_sid
from devtools.simulator.serving import serve
from devtools.simulator.webhooks import deliver
from tests.bench import pg as pg_server
from tests.bench.pg import fresh_database
from tests.support.helpers import body, sign
from tests.support.processes import ROOT, procfile_argv, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.world import AGENT, World
from workers.core.room import Phase
from workers.settings import normalise_database_url
from workers.store.engine import make_engine
from workers.store.models import ROOMS

QUICK = os.environ.get("BENCH_QUICK") == "1"
LIVE_ROOMS = 1000 if not QUICK else 50  # `make bench`'s
TITLE = "Watch: canaries + liveness reads at "  # its section's, in `results.md`
WINDOW = 10.0 if not QUICK else 3.0  # seconds a round measures
ROUNDS = 3 if not QUICK else 2
WARM_UP = 32.0 if not QUICK else 2.0  # seconds unmeasured once every room is open: two 15-s periods
CONCURRENCY = 20  # webhooks in flight while the rooms open
# A conversation's turn as an agent's state shows it: (until this many seconds into the turn, state)
TURN = ((4.0, "listening"), (5.0, "thinking"), (9.0, "speaking"))
PROFILE = os.environ.get("BENCH_PROFILE", "")
DATABASE = "warden_bench_watch"  # PostgreSQL's database for this benchmark (fresh each run)
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
        windows = f"{self.rooms:,} rooms, {len(shares)} windows of {self.window:g} s"
        return f"{min(shares):.1f}-{max(shares):.1f} % ({self.database}, {windows})"

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
                "WARDEN_RECONCILE_SECONDS": "3600",
            }
            argv = {"worker": [sys.executable, "-m", "tests.bench.profile_worker"]} if PROFILE else {}
            with run_warden(Path(tmp), argv, **env) as warden, open(Path(tmp) / "off.log", "wb") as log:
                off_env = {
                    **warden.env,
                    "REDIS_URL": _other_database(redis_server.url),
                    "WARDEN_CANARY_AGENTS": "",
                    "WARDEN_LIVENESS_SECONDS": "0",
                }
                # started now: its start-up is over long before the first window
                off = subprocess.Popen(
                    procfile_argv("worker"), env=off_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
                turning: asyncio.Task[None] | None = None
                try:
                    world = World(fake, warden, client)  # sends the stand-in's own webhooks (canaries')
                    await _open_rooms(world, rooms)
                    await _all_present(database, rooms)
                    turning = asyncio.create_task(_turn_states(fake, rooms))
                    run = await _rounds(fake, warden.running["worker"][0][0].pid, off.pid, rooms, name)
                finally:
                    if turning is not None:
                        turning.cancel()
                    off.terminate()
                    off.wait()
    return run


async def _open_rooms(world: World, rooms: int) -> None:
    """Each room: a person joins, then the agent (no state in its join, as with livekit-agents), which
    then publishes `listening`; their webhooks sent to Warden, in order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        room, agent = f"watch-{i}", f"agent-{i}"
        webhooks = world.fake.join(room, "alice") + world.fake.join(room, agent, agent_name=AGENT)
        world.fake.set_state(room, agent, "listening")
        async with gate:
            for n, (event, fields) in enumerate(webhooks):
                await _send(world, event, room, f"EV_{room}_{n}", fields)

    await asyncio.gather(*(one(i) for i in range(rooms)))


async def _send(world: World, event: str, room: str, event_id: str, fields: dict[str, Any]) -> None:
    """One webhook, delivered as livekit-server does (`deliver`: tried again on a dropped connection)."""
    raw = body(event, id=event_id, created_at=int(time.time()), room=room, sid=room_sid(room), **fields)
    headers = {"Authorization": sign(raw, KEY, SECRET)}
    response = await deliver(world.client, f"{world.warden.url}/webhook", raw, headers)
    assert response.status_code == 200, response.text


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
    """Each agent goes round a conversation's turn (`TURN`: listening, thinking, speaking), from a
    point of its own; its state set every half second."""
    rng = random.Random(30)
    offsets = [rng.uniform(0, TURN[-1][0]) for _ in range(rooms)]
    while True:
        now = time.monotonic()
        for i, offset in enumerate(offsets):
            at = (now + offset) % TURN[-1][0]
            state = next(state for until, state in TURN if at < until)
            fake.set_state(f"watch-{i}", f"agent-{i}", state)
        await asyncio.sleep(0.5)


def _other_database(redis_url: str) -> str:
    """The same Redis server's database 1 (the second worker's queue and cron jobs, apart)."""
    base = redis_url.rstrip("/")
    head, _, tail = base.rpartition("/")
    return f"{head}/1" if tail.isdigit() and head.count("/") >= 2 else f"{base}/1"


async def _rounds(fake: FakeLiveKit, on_pid: int, off_pid: int, rooms: int, name: str) -> WatchRun:
    on, off = psutil.Process(on_pid), psutil.Process(off_pid)

    def cpu(process: psutil.Process) -> float:
        return sum(process.cpu_times()[:2])

    # Not measured: two liveness periods, each room's first look (news, once) and its second.
    await asyncio.sleep(WARM_UP)
    if PROFILE:
        on.send_signal(signal.SIGUSR1)  # the profile: from here on
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


def section(pg: bool) -> tuple[str, str, dict[str, str]]:
    """`make bench`'s section: its title, table and target figure (on PostgreSQL when one answers, else
    SQLite)."""
    url = fresh_database(DATABASE) if pg else None
    run = measure(LIVE_ROOMS, url, "PostgreSQL" if url else "SQLite")
    title = (
        f"{TITLE}{run.rooms:,} live rooms: one worker's CPU with them minus a worker's without, "
        "same windows (a canary every 5 m, each room looked at every 15 s)"
    )
    return title, f"{run.table()}\n\nCanary runs: {run.canaries}.", {"canaries": run.figure()}


def main() -> None:
    with pg_server.server():
        sqlite = os.environ.get("BENCH_DATABASE") == "sqlite"
        url = None if sqlite else os.environ.get("BENCH_DATABASE_URL") or fresh_database(DATABASE)
        rooms = int(os.environ.get("BENCH_ROOMS", str(LIVE_ROOMS)))
        run = measure(rooms, url, "PostgreSQL" if url else "SQLite")
    print(run.table())
    print(f"\ncanaries + liveness reads: {run.figure()}; canary runs: {run.canaries}")


if __name__ == "__main__":
    main()
