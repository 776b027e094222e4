"""Worker benchmark: webhook events/s through one `python -m workers` process, on SQLite and on
PostgreSQL, and its memory after the rooms it has seen. Events are queued first (through the same
one-round-trip enqueue the web uses), then the worker drains the queue; rate = events / drain time.
Run with `make bench` (`BENCH_EVENTS`, `BENCH_ROOMS`; `BENCH_DATABASE_URL` adds a PostgreSQL run).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.embedded_redis import EmbeddedRedis
from tests.conftest import KEY, SECRET
from tests.processes import ROOT
from workers.db import make_engine
from workers.enqueue import Enqueuer
from workers.events import Event, EventKind, Participant, ParticipantKind, to_dict
from workers.settings import normalise_database_url

EVENTS = int(os.environ.get("BENCH_EVENTS", "4000"))
ROOMS = int(os.environ.get("BENCH_ROOMS", "1000"))
QUEUE = "warden:queue"


def events() -> list[Event]:
    out, now = [], int(time.time())
    for i in range(EVENTS):
        room, n = i % ROOMS, i // ROOMS
        kind = EventKind.PARTICIPANT_JOINED if n % 2 == 0 else EventKind.PARTICIPANT_LEFT
        who = Participant(f"user-{n // 2}", f"PA_{room}_{n // 2}", int(ParticipantKind.STANDARD))
        out.append(Event(f"EV_{i}", kind, str(kind), now + n, f"RM_{room}", f"bench-{room}", who))
    return out


async def run(database_url: str, redis_url: str) -> tuple[float, float]:
    redis = ArqRedis.from_url(redis_url)
    await redis.flushdb()
    enqueuer = Enqueuer(redis, QUEUE)
    for event in events():
        await enqueuer.enqueue("apply_webhook", event.id, to_dict(event), time.time())
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "LIVEKIT_URL": "http://127.0.0.1:9",
        "WARDEN_JOIN_SLA_SECONDS": "3600",
        "WARDEN_LOG_LEVEL": "WARNING",
        "WARDEN_RECONCILE_SECONDS": "3600",
    }
    subprocess.run(
        [sys.executable, "-m", "workers.migrate"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    worker = subprocess.Popen([sys.executable, "-m", "workers"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    engine = make_engine(normalise_database_url(database_url))
    try:
        while await _stored(engine) < EVENTS:
            if time.monotonic() - started > 300:
                raise RuntimeError(f"only {await _stored(engine)} of {EVENTS} events stored in 300 s")
            await asyncio.sleep(0.05)  # another process works: polling the database is the only view
        elapsed = time.monotonic() - started
        rss = psutil.Process(worker.pid).memory_info().rss / 2**20
    finally:
        worker.terminate()
        worker.wait()
        await redis.aclose()
        await engine.dispose()
    return EVENTS / elapsed, rss


async def _stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT count(*) FROM events WHERE kind != 'action'")) or 0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        runs = [("SQLite", f"sqlite:///{tmp}/w.db")]
        if os.environ.get("BENCH_DATABASE_URL"):
            runs.append(("PostgreSQL", os.environ["BENCH_DATABASE_URL"]))
        print("| database | events | rooms | events/s (one worker) | worker RSS MiB after |")
        print("|---|---|---|---|---|")
        for name, url in runs:
            rate, rss = asyncio.run(run(url, server.url))
            print(f"| {name} | {EVENTS} | {ROOMS} | {rate:.0f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
