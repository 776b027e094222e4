"""Issue 23's outage, end to end: N rooms (300) start over 10 s while the agent's Cloud deployment is
down (no dispatch answered for the first 25 s, or until Warden restarts it), against Warden's Procfile
processes (release, web, ONE worker) on SQLite and a private redis-server, with join, rejoin and active
SLAs of 2 s. The stand-in LiveKit (`devtools/simulator`, faithful timing: jobs listed 5 s after they are
taken) plays the rooms (`devtools.simulator.world.Simulation`); each meeting lasts 75-80 s. Prints how
many rooms had no working agent at their end (the issue saw 1-10 in four runs of five), and any span
over 1 s with two copies of the agent in a room.

    python -m tests.bench.outage_comeback          # BENCH_ROOMS=300, BENCH_SEED=<time>
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import httpx

from devtools.embedded_redis import EmbeddedRedis, free_port
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from devtools.simulator.world import Report, Simulation, parse_failures
from tests.support.processes import Warden, run_warden
from tests.support.settings import KEY, SECRET

AGENT = "notetaker"
ROOMS = int(os.environ.get("BENCH_ROOMS", "300"))
SEED = int(os.environ.get("BENCH_SEED", str(int(time.time()))))


async def _simulate(warden: Warden, fake: FakeLiveKit, port: int) -> Report:
    async with serve(fake.app, port=port), httpx.AsyncClient(timeout=30.0) as client:
        sim = Simulation(
            fake,
            client,
            f"{warden.url}/webhook",
            AGENT,
            parse_failures("outage:0+25"),
            rng=random.Random(SEED),
            meeting=(75.0, 80.0),
            agent_delay=(0.3, 1.5),
        )
        return await sim.run(ROOMS, over=10.0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_server:
        port = free_port()
        livekit = f"http://127.0.0.1:{port}"
        env = {
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": f"sqlite:///{tmp}/w.db",
            "LIVEKIT_URL": livekit,
            "LK_AGENTS_URL": livekit,
            "WARDEN_CLOUD_AGENT_ID": "CA_simulated",
            "WARDEN_AGENT_NAME": AGENT,
            "WARDEN_JOIN_SLA_SECONDS": "2",
            "WARDEN_REJOIN_SLA_SECONDS": "2",
            "WARDEN_ACTIVE_SLA_SECONDS": "2",
            "WARDEN_LOG_LEVEL": "WARNING",
        }
        fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_simulated": AGENT})
        started = time.monotonic()
        with run_warden(Path(tmp), **env) as warden:
            report = asyncio.run(_simulate(warden, fake, port))
        rooms = sorted({p.room for p in fake.presence})  # every room that was, closed ones too
        doubled = [(r, s) for r in rooms for s in fake.doubled(r, AGENT) if s[1] - s[0] > 1.0]
        print(
            f"seed {SEED}: {report.rooms} rooms, {report.outage_rooms} in the outage, "
            f"{report.unserved} without a working agent at their end {report.unserved_rooms[:10]}; "
            f"Warden: {report.warden_dispatches} dispatches, {report.restarts} restart(s), "
            f"{report.evictions} eviction(s); two copies over 1 s: {doubled[:10]}; "
            f"{time.monotonic() - started:.0f} s"
        )


if __name__ == "__main__":
    main()
