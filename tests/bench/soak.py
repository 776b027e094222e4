"""`make soak`: does Warden stay flat while rooms come and go? Minutes, not hours, by compressing time.

Web and worker run from the Procfile on SQLite, with an embedded Redis and the stand-in LiveKit. The
simulator opens `SOAK_ROOMS` rooms (2,000) evenly over `SOAK_SECONDS` (300); each lives 3-12 s (30-120
simulated seconds at ten to one) with the demo's failure mix (never joins, leaves, stalls, an outage),
and `WARDEN_RETENTION=30s` stands for five simulated minutes. Every 5 s it samples the RSS of web and
worker, the rows of each table, the database's size on disk (file and WAL), the queue lag (the web's
`/metrics`) and the ERROR lines logged so far.

Writes `docs/benchmarks/soak.md` (the table and the verdict) and `docs/benchmarks/soak.svg` (the plot).
Targets: rows, database size and RSS flat after warm-up (the means of the three thirds of what follows
the warm-up within 10 % of each other), no ERROR line, queue lag under a second.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from service.dev.embedded_redis import EmbeddedRedis
from service.dev.run import DEMO_SETTINGS
from service.simulator.livekit import FakeLiveKit
from service.simulator.serving import serve
from service.simulator.world import FailurePlan, Outage, Simulation
from tests.bench import plot
from tests.support.processes import ROOT, run_warden
from tests.support.settings import KEY, SECRET

OUT = ROOT / "docs" / "benchmarks"
ROOMS = int(os.environ.get("SOAK_ROOMS", "2000"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
RETENTION = "30s"
SAMPLE_EVERY = 5.0
WARM_UP = 90.0  # retention + a prune interval + the longest meeting, with room to spare
FAILURES = FailurePlan(never_joins=0.2, leaves=0.1, stalls=0.1, outage=Outage(60.0, 40.0))  # the demo's
TABLES = ("rooms", "events", "incidents", "incident_rooms", "incident_actions", "outbox")


@dataclass
class Sample:
    at: float
    web_mb: float
    worker_mb: float
    rows: dict[str, int]
    db_mb: float
    used_mb: float  # the database's pages in use: what the rows take, without the WAL and free pages
    lag: float
    errors: int


@dataclass
class Soak:
    samples: list[Sample] = field(default_factory=list)
    report: str = ""
    errors: list[str] = field(default_factory=list)


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else 0.0


def _rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
        return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def _used_mb(db: Path) -> float:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
        pages, free, size = (
            connection.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
    return float((pages - free) * size) / 2**20


def _size_mb(db: Path) -> float:
    files = [db, Path(f"{db}-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


async def _lag(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(f"{url}/metrics")).text
    match = re.search(r"^warden_queue_lag_seconds ([0-9.e+-]+)$", text, re.M)
    return float(match[1]) if match else 0.0


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


def _errors(logs: Path) -> int:
    return len(_error_lines(logs))


async def _soak(tmp: Path) -> Soak:
    soak = Soak()
    fake = FakeLiveKit(KEY, SECRET)
    db = tmp / "warden.db"
    with EmbeddedRedis(tmp / "redis") as redis:
        async with serve(fake.app) as livekit_url:
            env = {
                **DEMO_SETTINGS,
                "WARDEN_AGENT_NAME": "soak-agent",
                "LIVEKIT_URL": livekit_url,
                "LK_AGENTS_URL": livekit_url,
                "REDIS_URL": redis.url,
                "DATABASE_URL": f"sqlite:///{db}",
                "WARDEN_RETENTION": RETENTION,
                "WARDEN_LOG_LEVEL": "WARNING",
            }
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
                        sample = Sample(
                            time.monotonic() - started,
                            _rss_mb(web),
                            _rss_mb(worker),
                            _rows(db),
                            _size_mb(db),
                            _used_mb(db),
                            await _lag(client, warden.url),
                            _errors(tmp),
                        )
                        soak.samples.append(sample)
                        print(_line(sample), flush=True)
                        await asyncio.wait({run}, timeout=SAMPLE_EVERY)
                    outcome = run.result()
                    soak.errors = _error_lines(tmp)
                    unserved = len(outcome.unserved_rooms)
                    soak.report = (
                        f"{outcome.rooms:,} rooms, {outcome.webhooks:,} webhooks ({outcome.webhook_errors} "
                        f"undelivered), {outcome.warden_dispatches} re-dispatches, {outcome.evictions} "
                        f"evictions, {outcome.restarts} restarts, {unserved} rooms unserved"
                    )
    return soak


def _line(s: Sample) -> str:
    rows = " | ".join(f"{s.rows[t]:,}" for t in TABLES)
    figures = f"{s.db_mb:.1f} | {s.used_mb:.2f} | {s.lag:.2f} | {s.errors}"
    return f"| {s.at:.0f} | {s.web_mb:.0f} | {s.worker_mb:.0f} | {rows} | {figures} |"


def _thirds(values: list[float]) -> list[float]:
    size = max(1, len(values) // 3)
    return [
        sum(part) / len(part) for part in (values[:size], values[size : 2 * size], values[2 * size :]) if part
    ]


def _flat(values: list[float]) -> tuple[bool, str]:
    if not values:
        return False, "no sample after the warm-up"
    means = _thirds(values)
    spread = max(means) / min(means) - 1 if min(means) > 0 else 0.0
    return spread <= 0.10, f"{' → '.join(f'{m:,.1f}' for m in means)} ({spread:.0%})"


def verdict(samples: list[Sample]) -> list[tuple[str, bool, str]]:
    steady = [s for s in samples if s.at >= WARM_UP]
    checks = [
        ("rooms rows", [float(s.rows["rooms"]) for s in steady]),
        ("events rows", [float(s.rows["events"]) for s in steady]),
        ("database MB", [s.db_mb for s in steady]),
        ("web RSS MB", [s.web_mb for s in steady]),
        ("worker RSS MB", [s.worker_mb for s in steady]),
    ]
    found = [(name, *_flat(values)) for name, values in checks]
    worst_lag = max((s.lag for s in samples), default=0.0)
    errors = samples[-1].errors if samples else 0
    found.append(("queue lag under 1 s", worst_lag < 1.0, f"worst {worst_lag:.2f} s"))
    found.append(("no ERROR line", errors == 0, f"{errors} ERROR line(s)"))
    return found


def write(soak: Soak) -> str:
    samples = soak.samples
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    steady = [s for s in samples if s.at >= WARM_UP]
    rooms = sum(s.rows["rooms"] for s in steady) / max(1, len(steady))
    db_bytes = sum(s.db_mb for s in steady) / max(1, len(steady)) * 2**20
    used_bytes = sum(s.used_mb for s in steady) / max(1, len(steady)) * 2**20
    events = sum(s.rows["events"] for s in steady) / max(1, len(steady))
    head = " | ".join(TABLES)
    lines = [
        "# Soak",
        "",
        f"Written by `make soak` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"{commit.stdout.strip() or 'unknown'}, {os.cpu_count()} cores. {ROOMS:,} rooms over "
        f"{SECONDS:.0f} s, each living 3-12 s (30-120 simulated s), demo failure mix, "
        f"`WARDEN_RETENTION={RETENTION}`, SQLite. "
        f"Warm-up: the first {WARM_UP:.0f} s. Method: [../benchmarks.md](../benchmarks.md#soak).",
        "",
        f"Simulated: {soak.report}.",
        "",
        "| target | met | after warm-up (means of the three thirds, spread) |",
        "| --- | --- | --- |",
        *(f"| {name} | {'yes' if ok else '**no**'} | {detail} |" for name, ok, detail in verdict(samples)),
        "",
        f"At the plateau: {rooms:,.0f} rooms and {events:,.0f} events kept, "
        f"{db_bytes / 2**20:.1f} MB on disk (file and WAL, free pages included), {used_bytes / 2**20:.2f} MB "
        f"of it in use: **{used_bytes / max(rooms, 1) / 1024:.1f} KB per room** kept, with its "
        f"{events / max(rooms, 1):.1f} events and actions.",
        "",
        *(["ERROR lines (the first ten):", "", "```", *soak.errors[:10], "```", ""] if soak.errors else []),
        "![soak](soak.svg)",
        "",
        f"| s | web RSS MB | worker RSS MB | {head} | database MB | in use MB | queue lag s | ERROR lines |",
        "| " + " | ".join(["---"] * (len(TABLES) + 7)) + " |",
        *(_line(s) for s in samples),
        "",
    ]
    (OUT / "soak.md").write_text("\n".join(lines))
    at = [s.at for s in samples]
    rows = {t: [float(s.rows[t]) for s in samples] for t in ("rooms", "events")}
    rss = {"web": [s.web_mb for s in samples], "worker": [s.worker_mb for s in samples]}
    disk = {"file + WAL": [s.db_mb for s in samples]}
    lag = {"lag": [s.lag for s in samples]}
    charts = [
        plot.over_time("Rows", at, rows, "rows"),
        plot.over_time("RSS", at, rss, "MB", x=plot.WIDTH),
        plot.over_time("Database on disk", at, disk, "MB", y=plot.HEIGHT),
        plot.over_time("Queue lag", at, lag, "s", x=plot.WIDTH, y=plot.HEIGHT),
    ]
    (OUT / "soak.svg").write_text(plot.figure(charts))
    return "\n".join(lines)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="warden-soak-") as tmp:
        soak = asyncio.run(_soak(Path(tmp)))
    print(write(soak))


if __name__ == "__main__":
    main()
