"""Ingest benchmark: signed, distinct webhooks/s through `POST /webhook` (verify + enqueue), one web
process, loaded from this second process on loopback, as a ratio to a bare Starlette endpoint served
the same way in the same run. Run with `make bench`; prints a Markdown table.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis

from service.embedded_redis import EmbeddedRedis, free_port
from tests.helpers import body, person, sign

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "benchkey", "bench-secret-long-enough-for-hs256-signing"
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "4000"))
CONCURRENCY = 32
ROUNDS = 2


def signed_bodies(n: int, tag: str) -> list[tuple[bytes, str]]:
    out = []
    for i in range(n):
        raw = body(
            "participant_joined",
            id=f"EV_{tag}_{i}",
            created_at=1767225600 + i,
            room=f"call-{i % 500}",
            sid=f"RM_{i % 500}",
            participant=person(f"user-{i}"),
        )
        out.append((raw, sign(raw, KEY, SECRET)))
    return out


async def load(url: str, requests: list[tuple[bytes, str]]) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            raw, token = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=raw, headers={"Authorization": token}) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return len(requests) / elapsed, latencies, errors


def start(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    raise RuntimeError(f"{argv} did not start")


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        warden_port, bare_port = free_port(), free_port()
        env = {
            **os.environ,
            "LIVEKIT_API_KEY": KEY,
            "LIVEKIT_API_SECRET": SECRET,
            "REDIS_URL": server.url,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "PORT": str(warden_port),
            "WARDEN_HOST": "127.0.0.1",
            "WARDEN_LOG_LEVEL": "WARNING",
        }
        uvicorn_bare = [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.bench.bare:app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        processes = [
            start([sys.executable, "-m", "service"], env, warden_port),
            start(uvicorn_bare, env, bare_port),
        ]
        try:
            rows = []
            for round_ in range(ROUNDS):
                bare = asyncio.run(
                    load(f"http://127.0.0.1:{bare_port}/webhook", signed_bodies(REQUESTS, f"b{round_}"))
                )
                warden = asyncio.run(
                    load(f"http://127.0.0.1:{warden_port}/webhook", signed_bodies(REQUESTS, f"w{round_}"))
                )
                rows.append((bare, warden))
            queued = redis.Redis.from_url(server.url).zcard("warden:queue")
        finally:
            for process in processes:
                process.terminate()
                process.wait()
    print("| round | bare req/s | warden req/s | ratio | warden p50 ms | warden p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for i, ((b_rps, _, b_err), (w_rps, w_lat, w_err)) in enumerate(rows, 1):
        print(
            f"| {i} | {b_rps:.0f} | {w_rps:.0f} | {w_rps / b_rps:.2f} | {p(w_lat, 50):.1f} "
            f"| {p(w_lat, 99):.1f} | {b_err + w_err} |"
        )
    print(
        f"\n{queued} jobs queued of {REQUESTS * ROUNDS} distinct webhooks sent ({REQUESTS} per round, "
        f"{CONCURRENCY} connections)"
    )


if __name__ == "__main__":
    main()
