"""Worker benchmark: webhook events/s through one `python -m workers` process, on SQLite and on
PostgreSQL, with its CPU per event and its memory after the rooms it has seen; then, with those rooms
in the database, how long the operator's pages take (`/metrics`, `/api/rooms`, the dashboard).

Events are queued first (through the same one-round-trip enqueue the web uses), then the worker drains
the queue; rate = events / drain time; CPU = the worker process's user+system time / events. Each room
gets a person joining, and (from the second event on) people leaving and joining again, so half the
rooms' events schedule a deadline. Run by `make bench` (`python -m tests.bench.run`); alone:
`BENCH_EVENTS=4000 BENCH_ROOMS=1000 [BENCH_DATABASE_URL=postgresql://...] python -m tests.bench.worker`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.embedded_redis import EmbeddedRedis, free_port
from tests.support.processes import ROOT
from tests.support.settings import KEY, SECRET
from workers.core.events import Event, EventKind, Participant, ParticipantKind, to_dict
from workers.queue.enqueue import Enqueuer
from workers.queue.jobs import queue_webhook
from workers.settings import normalise_database_url
from workers.store.engine import make_engine

QUEUE = "warden:queue"
PAGES = ("/metrics", "/api/rooms", "/")


@dataclass
class WorkerRun:
    events: int
    rooms: int
    rate: float  # events/s
    cpu_us: float  # worker CPU per event
    rss_mib: float
    pages_ms: dict[str, float]  # median time of each page, with these rooms in the database


def events(count: int, rooms: int) -> list[Event]:
    out, now = [], int(time.time())
    for i in range(count):
        room, n = i % rooms, i // rooms
        kind = EventKind.PARTICIPANT_JOINED if n % 2 == 0 else EventKind.PARTICIPANT_LEFT
        who = Participant(f"user-{n // 2}", f"PA_{room}_{n // 2}", int(ParticipantKind.STANDARD))
        out.append(Event(f"EV_{i}", kind, str(kind), now + n, f"RM_{room}", f"bench-{room}", who))
    return out


def worker_env(database_url: str, redis_url: str) -> dict[str, str]:
    """A bench worker's environment: no LiveKit, deadlines and reconciliation out of the way."""
    return {
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


async def _run(database_url: str, redis_url: str, count: int, rooms: int, workers: int = 1) -> WorkerRun:
    redis = ArqRedis.from_url(redis_url)
    await redis.flushdb()
    enqueuer = Enqueuer(redis, QUEUE)
    await asyncio.gather(
        *(queue_webhook(enqueuer, e.id, to_dict(e), time.time()) for e in events(count, rooms))
    )
    env = worker_env(database_url, redis_url)
    subprocess.run(
        [sys.executable, "-m", "workers.migrate"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    started_workers = [
        subprocess.Popen([sys.executable, "-m", "workers"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    engine = make_engine(normalise_database_url(database_url))
    try:
        process = _Processes([psutil.Process(w.pid) for w in started_workers])
        # Measured from the first event stored, so that the worker's start-up is not counted.
        launched, first = time.monotonic(), 0
        while (first := await _stored(engine)) == 0:
            if time.monotonic() - launched > 60:
                raise RuntimeError("the worker stored nothing in 60 s")
            await asyncio.sleep(0.01)  # another process works: polling the database is the only view
        started, cpu = time.monotonic(), process.cpu_times()
        cpu_before = cpu.user + cpu.system
        while (stored := await _stored(engine)) < count:
            if time.monotonic() - started > 600:
                raise RuntimeError(f"only {stored} of {count} events stored in 600 s")
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        cpu = process.cpu_times()
        rss = process.memory_info().rss / 2**20
    finally:
        for worker in started_workers:
            worker.terminate()
            worker.wait()
        await redis.aclose()
        await engine.dispose()
    pages = _time_pages(env)
    done = count - first
    return WorkerRun(
        count, rooms, done / elapsed, (cpu.user + cpu.system - cpu_before) / done * 1e6, rss, pages
    )


def _time_pages(env: dict[str, str], repeat: int = 7) -> dict[str, float]:
    """Median time of each operator page, served by `python -m service` on this database."""
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "service"],
        env={**env, "PORT": str(port), "WARDEN_HOST": "127.0.0.1"},
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            out = {}
            for page in PAGES:
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    client.get(page).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                out[page] = statistics.median(times)
            return out
    finally:
        web.terminate()
        web.wait()


async def _stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT count(*) FROM events WHERE kind != 'action'")) or 0)


class _Processes:
    """Several worker processes read as one: CPU times and RSS summed."""

    def __init__(self, processes: list[psutil.Process]) -> None:
        self._processes = processes

    def cpu_times(self) -> Any:
        times = [p.cpu_times() for p in self._processes]
        return type(times[0])(*(sum(t[i] for t in times) for i in range(len(times[0]))))

    def memory_info(self) -> Any:
        return self._processes[0].memory_info()  # one process's RSS, as the single-worker runs report


def measure(database_url: str, redis_url: str, count: int, rooms: int, workers: int = 1) -> WorkerRun:
    """Events/s through `workers` worker processes (their CPU per event summed)."""
    return asyncio.run(_run(database_url, redis_url, count, rooms, workers))


def main() -> None:
    count, rooms = int(os.environ.get("BENCH_EVENTS", "4000")), int(os.environ.get("BENCH_ROOMS", "1000"))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        runs = [("SQLite", f"sqlite:///{tmp}/w.db")]
        if os.environ.get("BENCH_DATABASE_URL"):
            runs.append(("PostgreSQL", os.environ["BENCH_DATABASE_URL"]))
        for name, url in runs:
            print(name, measure(url, server.url, count, rooms))


if __name__ == "__main__":
    main()
