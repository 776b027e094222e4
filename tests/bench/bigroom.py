"""Big-room benchmark (issue 24): 5,000 `participant_joined` webhooks for one room within one second,
with 100 ordinary rooms' events (`room_started` and a join each) queued among them, through one
`python -m workers` process. Early in the storm one of Warden's own events for the big room (a heartbeat
of a later second) is queued too: before issue 24 it made every join after it "late", each re-folding
the room's whole log.

Events are queued as the web queues them (`queue_webhook`, through an `Enqueuer` spacing one room's jobs
as `WARDEN_ROOM_EVENTS_PER_SECOND` says) at the pace they arrive, spread over one second; or, the issue's
backlog, the whole storm at once and the ordinary rooms' events right after it. Measured, from
the moment each event was queued: how long until each ordinary room's two events are stored (polled
every 20 ms), how long until the big room is settled (its 5,000 joins stored, and its row counting 5,000
people), and the worker's CPU time meanwhile. Targets: ordinary rooms within 2 s, the big room within
30 s. Run by `make bench`; alone: `python -m tests.bench.run bigroom`, or
`[BENCH_DATABASE_URL=postgresql://...] [BENCH_AT_ONCE=1] python -m tests.bench.bigroom`;
`BENCH_WORKER_ROOT=<checkout>` runs another checkout's worker (to compare with the version before),
`BENCH_CAP` gives up after that many seconds (default 600).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.embedded_redis import EmbeddedRedis
from tests.bench.worker import worker_env
from tests.support.processes import ROOT
from tests.support.waiting import wait_until
from workers.core.events import Event, EventKind, Participant, ParticipantKind, to_dict
from workers.queue.enqueue import Enqueuer
from workers.queue.jobs import queue_heartbeat, queue_webhook
from workers.settings import Settings, normalise_database_url
from workers.store.engine import make_engine

QUEUE = "warden:queue"
STORM, ROOMS = 5000, 100
SPREAD = 1.0  # seconds over which everything is queued
TICKS = 50  # queued in this many slices of the second
BIG = "RM_big"
CAP = float(os.environ.get("BENCH_CAP", "600"))  # seconds before the run is given up
DEFAULT_RATE = Settings.model_fields["warden_room_events_per_second"].default


@dataclass
class BigRoomRun:
    database: str
    queued: str  # how the events were queued: over one second, or the storm at once and the rooms after
    ordinary_p50: float  # seconds from an ordinary room's last event queued to both stored
    ordinary_max: float
    settled: float  # seconds from the first event queued to the big room settled
    cpu: float  # worker CPU seconds from the first event queued to the big room settled


def _join(n: int, sid: str, name: str, at: int, who: str) -> Event:
    kind = EventKind.PARTICIPANT_JOINED
    person = Participant(who, f"PA_{sid}_{who}", int(ParticipantKind.STANDARD))
    return Event(f"EV_{sid}_{n}", kind, str(kind), at, sid, name, person)


def _started(sid: str, name: str, at: int) -> Event:
    return Event(f"EV_{sid}_start", EventKind.ROOM_STARTED, "room_started", at, sid, name)


async def _ordinary_stored(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT room_sid, count(*) FROM events WHERE room_sid LIKE 'RM_o%' AND kind != 'action' "
                "GROUP BY room_sid"
            )
        )
        return {str(sid): int(n) for sid, n in rows}


async def _big_counted(engine: AsyncEngine) -> int:
    """People the big room's row counts (listed and only counted)."""
    async with engine.connect() as connection:
        state = await connection.scalar(text("SELECT state FROM rooms WHERE sid = :sid"), {"sid": BIG})
    if state is None:
        return 0
    data = json.loads(state) if isinstance(state, str) else state
    return len(data.get("people", [])) + int(data.get("people_unlisted", 0))


async def _run(database_url: str, redis_url: str, label: str, ticks: int) -> BigRoomRun:
    redis = ArqRedis.from_url(redis_url)
    await redis.flushdb()
    env = worker_env(database_url, redis_url)
    subprocess.run(
        [sys.executable, "-m", "workers.migrate"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    rate = float(os.environ.get("WARDEN_ROOM_EVENTS_PER_SECOND", DEFAULT_RATE))
    enqueuer = Enqueuer(redis, QUEUE, room_spacing_ms=1000.0 / rate if rate else 0.0)  # as the web's
    worker_root = os.environ.get("BENCH_WORKER_ROOT", str(ROOT))  # another checkout's worker, to compare
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers"], env=env, cwd=worker_root, stderr=subprocess.DEVNULL
    )
    engine = make_engine(normalise_database_url(database_url))
    try:
        process = psutil.Process(worker.pid)
        # Warm up: the worker is running and has recorded something before the clock starts.
        warm = _started("RM_warm", "bench-warm", int(time.time()))
        await queue_webhook(enqueuer, warm.id, to_dict(warm), time.time())

        async def warmed() -> bool:
            return await _count(engine, "RM_warm") > 0

        await wait_until(warmed, "the worker stored RM_warm", timeout=60, every=0.02)
        second = int(time.time())
        storm = [_started(BIG, "bench-big", second)]
        storm += [_join(i, BIG, "bench-big", second, f"user-{i}") for i in range(STORM)]
        ordinary = [
            [
                _started(f"RM_o{i}", f"bench-o{i}", second),
                _join(0, f"RM_o{i}", f"bench-o{i}", second, "caller"),
            ]
            for i in range(ROOMS)
        ]
        queued_at: dict[str, float] = {}
        cpu_before = sum(process.cpu_times()[:2])
        started = time.monotonic()
        watching = asyncio.create_task(_watch(engine, started, queued_at))  # while the storm is queued
        for tick in range(ticks):
            share = storm[tick * len(storm) // ticks : (tick + 1) * len(storm) // ticks]
            rooms = ordinary[tick * ROOMS // ticks : (tick + 1) * ROOMS // ticks]
            if ticks == 1:  # the storm first, then the rooms: each room's events behind the whole storm
                await asyncio.gather(*(queue_webhook(enqueuer, e.id, to_dict(e), time.time()) for e in share))
                share = []
            events = share + [e for pair in rooms for e in pair]
            for pair in rooms:  # from before they are queued: an upper bound of their wait
                queued_at[pair[0].room_sid] = time.monotonic()
            await asyncio.gather(*(queue_webhook(enqueuer, e.id, to_dict(e), time.time()) for e in events))
            if tick == min(2, ticks - 1):  # Warden's own event for the big room, of a later second
                await queue_heartbeat(enqueuer, "bench-big", "agent-x", second + 1.5)
            await asyncio.sleep(max(0.0, started + (tick + 1) * SPREAD / ticks - time.monotonic()))
        lags, settled = await watching
        cpu = sum(process.cpu_times()[:2]) - cpu_before
    finally:
        worker.terminate()
        worker.wait()
        await redis.aclose()
        await engine.dispose()
    queued = "over 1 s" if ticks > 1 else "storm at once, rooms after"
    return BigRoomRun(label, queued, lags[len(lags) // 2], lags[-1], settled, cpu)


async def _watch(
    engine: AsyncEngine, started: float, queued_at: dict[str, float]
) -> tuple[list[float], float]:
    """Poll every 20 ms until every ordinary room's events are stored and the big room is settled: each
    ordinary room's time from its last event queued to both stored, and when the big room settled."""
    lags: dict[str, float] = {}
    settled: float | None = None
    while settled is None or len(lags) < ROOMS:
        now = time.monotonic()
        if now - started > CAP:
            raise RuntimeError(f"not settled in {CAP:g} s: {len(lags)} ordinary rooms, big room {settled}")
        for sid, n in (await _ordinary_stored(engine)).items():
            if n >= 2 and sid not in lags:
                lags[sid] = now - queued_at[sid]
        if settled is None and await _big_counted(engine) >= STORM:
            settled = now - started
        await asyncio.sleep(0.02)
    return sorted(lags.values()), settled


async def _count(engine: AsyncEngine, sid: str) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT count(*) FROM events WHERE room_sid = :sid"), {"sid": sid}
        )
        return int(found or 0)


def measure(database_url: str, redis_url: str, label: str, *, at_once: bool = False) -> BigRoomRun:
    """One run of the storm on `database_url` (`label`: the database's name, for the report): queued over
    one second, the rooms among the storm; or (`at_once`) the whole storm queued at once and the rooms'
    events right after it, behind all of it in arrival order (the issue's backlog)."""
    return asyncio.run(_run(database_url, redis_url, label, 1 if at_once else TICKS))


def table(runs: list[BigRoomRun]) -> str:
    rows = [
        "| database | queued | ordinary rooms' events applied, p50 s | max s | big room settled s "
        "| worker CPU s |",
        "|---" * 6 + "|",
    ]
    rows += [
        f"| {r.database} | {r.queued} | {r.ordinary_p50:.2f} | {r.ordinary_max:.2f} | {r.settled:.1f} "
        f"| {r.cpu:.1f} |"
        for r in runs
    ]
    return "\n".join(rows)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        at_once = os.environ.get("BENCH_AT_ONCE") == "1"
        runs = [measure(f"sqlite:///{tmp}/big.db", server.url, "SQLite", at_once=at_once)]
        if os.environ.get("BENCH_DATABASE_URL"):
            runs.append(measure(os.environ["BENCH_DATABASE_URL"], server.url, "PostgreSQL", at_once=at_once))
        print(table(runs))


if __name__ == "__main__":
    main()
