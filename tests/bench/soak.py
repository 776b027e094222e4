"""`make soak`: does Warden stay flat while rooms come and go? Minutes, not hours, by compressing time.

Web and worker run from the Procfile on SQLite (or PostgreSQL: `SOAK_DATABASE=postgresql`, see
`tests.bench.soak_db`), with an embedded Redis and the stand-in LiveKit. The simulator opens `SOAK_ROOMS`
rooms (2,000) evenly over `SOAK_SECONDS` (300); each lives 3-12 s (30-120 simulated seconds at ten to
one) with the demo's failure mix (never joins, leaves, stalls) and an outage of 20 s every 70 s, the
first at 20 s: outages are part of the steady state, so each third of the measured window holds one,
at the same place. `WARDEN_RETENTION=30s` stands for five simulated minutes. Every 5 s it samples the RSS
of web and worker, the rows of each table, the database's size on disk and in use, the queue lag (the
web's `/metrics`), the longest a job had been running then (read from Redis), and the ERROR lines logged
so far. `SOAK_TRACE=1` also traces the worker's Python memory (`tests/bench/trace`) and reports what grew.

Writes `docs/benchmarks/soak.md` and `soak.svg` (`soak-postgresql.*` on PostgreSQL): the table, the
verdict and the plot. Targets: rows, database size and RSS flat after the warm-up (the means of the three
70-s thirds of the window from 90 s to `SOAK_SECONDS` within 10 % of each other), no ERROR line, queue
lag under a second.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import deserialize_job
from redis.asyncio import Redis

from devtools.embedded_redis import EmbeddedRedis
from devtools.run import DEMO_SETTINGS
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from devtools.simulator.world import FailurePlan, Outage, Simulation
from tests.bench import plot, soak_trace
from tests.bench.soak_db import TABLES, PostgreSQLDatabase, SQLiteDatabase, soak_database
from tests.support.processes import ROOT, run_warden
from tests.support.settings import KEY, SECRET
from workers.settings import Settings

OUT = ROOT / "docs" / "benchmarks"
ROOMS = int(os.environ.get("SOAK_ROOMS", "2000"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
RETENTION = "30s"
SAMPLE_EVERY = 5.0
WARM_UP = (
    90.0  # retention + a prune interval + the longest meeting + an outage's incident, with room to spare
)
PERIOD = (SECONDS - WARM_UP) / 3  # an outage in each third of the measured window, at the same place
OUTAGE = Outage(WARM_UP % PERIOD, PERIOD * 2 / 7, every=PERIOD)  # 20 s every 70 s in 300 s
FAILURES = FailurePlan(never_joins=0.2, leaves=0.1, stalls=0.1, outage=OUTAGE)  # the demo's, outages repeated
QUEUE = Settings.model_fields["warden_queue_name"].default
LOAD_BEFORE = os.getloadavg()[0]
COMMIT = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
).stdout.strip()  # the code that runs: read at the start


@dataclass
class Sample:
    at: float
    web_mb: float
    worker_mb: float
    rows: dict[str, int]
    db_mb: float
    used_mb: float
    lag: float
    running: float  # how long the longest-running job had been running (since it was due)
    errors: int
    running_job: str = ""


@dataclass
class Soak:
    database: str
    samples: list[Sample] = field(default_factory=list)
    report: str = ""
    errors: list[str] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else 0.0


async def _lag(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(f"{url}/metrics")).text
    match = re.search(r"^warden_queue_lag_seconds ([0-9.e+-]+)$", text, re.M)
    return float(match[1]) if match else 0.0


async def _running(redis: Redis) -> tuple[float, str]:
    """The due job that has been in the queue longest while a worker runs it: (seconds, function)."""
    now_ms = time.time() * 1000
    for job_id, score in await redis.zrangebyscore(QUEUE, "-inf", now_ms, start=0, num=50, withscores=True):
        if await redis.exists(in_progress_key_prefix + job_id.decode()):
            raw = await redis.get(job_key_prefix + job_id.decode())
            function = deserialize_job(raw).function if raw else "?"
            return (now_ms - score) / 1000, function
    return 0.0, ""


# An outage is logged as an ERROR on purpose (the operator's alert): the injected failures call for it.
EXPECTED_ERROR = re.compile(r"warden\.escalation: incident \S+ opened for agent")


def _error_lines(logs: Path) -> list[str]:
    """ERROR lines logged so far, but for the incident alerts the injected outages call for."""
    return [
        line
        for f in sorted(logs.glob("*.log"))
        for line in f.read_text(errors="replace").splitlines()
        if " ERROR " in line and not EXPECTED_ERROR.search(line)
    ]


async def _soak(tmp: Path, database: SQLiteDatabase | PostgreSQLDatabase) -> Soak:
    soak = Soak(database.name)
    fake = FakeLiveKit(KEY, SECRET)
    trace = soak_trace.environ(tmp)
    with EmbeddedRedis(tmp / "redis") as redis:
        async with serve(fake.app) as livekit_url:
            env = {
                **DEMO_SETTINGS,
                **trace,
                "WARDEN_AGENT_NAME": "soak-agent",
                "LIVEKIT_URL": livekit_url,
                "LK_AGENTS_URL": livekit_url,
                "REDIS_URL": redis.url,
                "DATABASE_URL": database.url,
                "WARDEN_RETENTION": RETENTION,
                "WARDEN_LOG_LEVEL": "WARNING",
            }
            queue = Redis.from_url(redis.url)
            with run_warden(tmp, **env) as warden:
                web = warden.running["web"][0][0].pid
                worker = warden.running["worker"][0][0].pid
                async with httpx.AsyncClient(timeout=10) as client:
                    simulation = Simulation(
                        fake,
                        client,
                        f"{warden.url}/webhook",
                        "soak-agent",
                        FAILURES,
                        rng=random.Random(7),
                        meeting=(3.0, 12.0),
                    )
                    started = time.monotonic()
                    run = asyncio.create_task(simulation.run(ROOMS, over=SECONDS))
                    while not run.done():
                        at = time.monotonic() - started
                        sizes = await database.sizes()
                        running, job = await _running(queue)
                        sample = Sample(
                            at,
                            _rss_mb(web),
                            _rss_mb(worker),
                            sizes.rows,
                            sizes.disk_mb,
                            sizes.used_mb,
                            await _lag(client, warden.url),
                            running,
                            len(_error_lines(tmp)),
                            job,
                        )
                        soak.samples.append(sample)
                        print(_line(sample), flush=True)
                        await asyncio.wait(
                            {run}, timeout=max(0.0, at + SAMPLE_EVERY - (time.monotonic() - started))
                        )
                    outcome = run.result()
                    soak.errors = _error_lines(tmp)
                    unserved = len(outcome.unserved_rooms)
                    soak.report = (
                        f"{outcome.rooms:,} rooms, {outcome.webhooks:,} webhooks ({outcome.webhook_errors} "
                        f"undelivered), {outcome.warden_dispatches} re-dispatches, {outcome.evictions} "
                        f"evictions, {outcome.restarts} restarts, {unserved} rooms unserved"
                    )
            await queue.aclose()
    soak.trace = soak_trace.report(tmp, WARM_UP) if trace else []
    return soak


def _line(s: Sample) -> str:
    rows = " | ".join(f"{s.rows[t]:,}" for t in TABLES)
    job = f"{s.running:.2f} {s.running_job}".strip()
    figures = f"{s.db_mb:.1f} | {s.used_mb:.2f} | {s.lag:.2f} | {job} | {s.errors}"
    return f"| {s.at:.0f} | {s.web_mb:.0f} | {s.worker_mb:.0f} | {rows} | {figures} |"


def steady(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if WARM_UP <= s.at < SECONDS]


def _thirds(samples: list[Sample], value: str | None = None, table: str = "") -> list[float]:
    """Means over the three equal spans of time after the warm-up (each holds one outage)."""
    parts: list[list[float]] = [[], [], []]
    for s in steady(samples):
        part = min(2, int((s.at - WARM_UP) // PERIOD))
        parts[part].append(float(s.rows[table]) if table else getattr(s, value or ""))
    return [sum(p) / len(p) for p in parts if p]


def _flat(means: list[float]) -> tuple[bool, str]:
    if len(means) < 3:
        return False, "too few samples after the warm-up"
    spread = max(means) / min(means) - 1 if min(means) > 0 else 0.0
    return spread <= 0.10, f"{' → '.join(f'{m:,.1f}' for m in means)} ({spread:.0%})"


def verdict(samples: list[Sample]) -> list[tuple[str, bool, str]]:
    checks = [
        ("rooms rows", _thirds(samples, table="rooms")),
        ("events rows", _thirds(samples, table="events")),
        ("database MB on disk", _thirds(samples, "db_mb")),
        ("web RSS MB", _thirds(samples, "web_mb")),
        ("worker RSS MB", _thirds(samples, "worker_mb")),
    ]
    found = [(name, *_flat(means)) for name, means in checks]
    worst_lag = max((s.lag for s in samples), default=0.0)
    longest = max(samples, key=lambda s: s.running, default=None)
    run = (
        f"; longest job running at a sample {longest.running:.2f} s ({longest.running_job})"
        if longest
        else ""
    )
    errors = samples[-1].errors if samples else 0
    found.append(("queue lag under 1 s", worst_lag < 1.0, f"worst {worst_lag:.2f} s{run}"))
    found.append(("no ERROR line", errors == 0, f"{errors} ERROR line(s)"))
    return found


def write(soak: Soak, database: SQLiteDatabase | PostgreSQLDatabase) -> str:
    samples = soak.samples
    kept = steady(samples)

    def mean(value: str, table: str = "") -> float:
        return sum(s.rows[table] if table else getattr(s, value) for s in kept) / max(1, len(kept))

    rooms, events, used = mean("", "rooms"), mean("", "events"), mean("used_mb") * 2**20
    head = " | ".join(TABLES)
    stem = "soak" if database.name == "SQLite" else "soak-postgresql"
    lines = [
        f"# Soak ({database.name})",
        "",
        f"Written by `make soak` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"{COMMIT or 'unknown'}, {os.cpu_count()} cores, load average before "
        f"{LOAD_BEFORE:.1f} (a machine shared with other work). {ROOMS:,} rooms over {SECONDS:.0f} s, each "
        f"living 3-12 s (30-120 simulated s), demo failure mix with an outage of {OUTAGE.length:.0f} s every "
        f"{PERIOD:.0f} s from {OUTAGE.start:.0f} s, `WARDEN_RETENTION={RETENTION}`, {database.name}. "
        f"Warm-up: the first {WARM_UP:.0f} s. Method: [../benchmarks.md](../benchmarks.md#soak).",
        "",
        f"Simulated: {soak.report}.",
        "",
        f"| target | met | after warm-up (means of the three {PERIOD:.0f}-s thirds, spread) |",
        "| --- | --- | --- |",
        *(f"| {name} | {'yes' if ok else '**no**'} | {detail} |" for name, ok, detail in verdict(samples)),
        "",
        f"At the plateau: {rooms:,.0f} rooms and {events:,.0f} events kept, {mean('db_mb'):.1f} MB on disk "
        f"({database.disk}), {used / 2**20:.2f} MB in use ({database.used}): "
        f"**{used / max(rooms, 1) / 1024:.1f} KB per room** kept, with its "
        f"{events / max(rooms, 1):.1f} events and actions.",
        "",
        *(["ERROR lines (the first ten):", "", "```", *soak.errors[:10], "```", ""] if soak.errors else []),
        *soak.trace,
        f"![soak]({stem}.svg)",
        "",
        f"| s | web RSS MB | worker RSS MB | {head} | database MB | in use MB | queue lag s "
        "| longest job running s | ERROR lines |",
        "| " + " | ".join(["---"] * (len(TABLES) + 8)) + " |",
        *(_line(s) for s in samples),
        "",
    ]
    (OUT / f"{stem}.md").write_text("\n".join(lines))
    at = [s.at for s in samples]
    rows = {t: [float(s.rows[t]) for s in samples] for t in ("rooms", "events")}
    rss = {"web": [s.web_mb for s in samples], "worker": [s.worker_mb for s in samples]}
    disk = {database.disk: [s.db_mb for s in samples], "in use": [s.used_mb for s in samples]}
    lag = {"lag (waiting)": [s.lag for s in samples], "longest running": [s.running for s in samples]}
    charts = [
        plot.over_time("Rows", at, rows, "rows"),
        plot.over_time("RSS", at, rss, "MB", x=plot.WIDTH),
        plot.over_time("Database", at, disk, "MB", y=plot.HEIGHT),
        plot.over_time("Queue", at, lag, "s", x=plot.WIDTH, y=plot.HEIGHT),
    ]
    (OUT / f"{stem}.svg").write_text(plot.figure(charts))
    return "\n".join(lines)


def main() -> None:
    if SECONDS < WARM_UP + 3 * SAMPLE_EVERY:
        raise SystemExit(
            f"SOAK_SECONDS={SECONDS:g}: the run must outlast the {WARM_UP:.0f}-s warm-up by 15 s"
        )
    with tempfile.TemporaryDirectory(prefix="warden-soak-") as tmp, soak_database(Path(tmp)) as database:
        soak = asyncio.run(_soak(Path(tmp), database))
        print(write(soak, database))


if __name__ == "__main__":
    main()
