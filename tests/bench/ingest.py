"""Ingest benchmark: signed, distinct webhooks/s through `POST /webhook` (verify + enqueue), one web
process, loaded from a second process on loopback, as a ratio to a bare Starlette endpoint served
the same way in the same run. Run with `make bench`; prints a Markdown table.

The load comes from wrk (C; `make bench` installs Debian's package when it can) with a Lua script that
posts pre-signed, distinct bodies (`ingest.lua`), so the load generator takes little of the machine's
two cores; without wrk, from aiohttp in this process (which takes more, and says so in the table).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis

from devtools.embedded_redis import EmbeddedRedis, free_port
from tests.support.helpers import body, person, sign

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "benchkey", "bench-secret-long-enough-for-hs256-signing"
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "4000"))  # per round, with aiohttp
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))  # per round, with wrk
WRK_BODIES = 40_000  # distinct webhooks per round with wrk: more than Warden answers in DURATION
CONCURRENCY = 32
ROUNDS = 3
LUA = Path(__file__).with_name("ingest.lua")


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


Result = tuple[float, list[float], int, int]  # req/s, [p50, p99] in ms, errors, requests sent


def load_wrk(url: str, requests: list[tuple[bytes, str]], tmp: str) -> Result:
    """Load `url` with wrk for DURATION seconds, posting `requests` in order (they wrap around)."""
    lines = Path(tmp) / "bodies.tsv"
    lines.write_text("".join(f"{token}\t{raw.decode()}\n" for raw, token in requests))
    argv = [
        "wrk",
        "-t1",
        f"-c{CONCURRENCY}",
        f"-d{DURATION}s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(lines),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    sent = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    latency = [_ms(re.search(rf"\s{q}%\s+([\d.]+\w+)", out).group(1)) for q in (50, 99)]  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return rate, latency, errors, sent


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_aiohttp(url: str, requests: list[tuple[bytes, str]]) -> Result:
    rate, latencies, errors = asyncio.run(load(url, requests))
    return rate, [p(latencies, 50), p(latencies, 99)], errors, len(requests)


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


@dataclass
class IngestRun:
    rounds: list[tuple[Result, Result]]  # (bare, warden) per round
    cpu_us: list[tuple[float, float]]  # (bare, warden) server CPU µs per request answered, per round
    queued: int  # jobs in Redis after the Warden rounds
    answered: int  # distinct webhooks Warden answered (wrk counts only completed requests)
    loader: str

    def table(self) -> str:
        lines = [
            "| round | bare req/s | warden req/s | ratio | bare p99 ms | warden p50 ms | warden p99 ms "
            "| p99 / bare's | CPU µs/request bare, warden | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        rows = zip(self.rounds, self.cpu_us, strict=True)
        for i, (((b_rps, (_, b99), b_err, _), (w_rps, (p50, p99), w_err, _)), (b_cpu, w_cpu)) in enumerate(
            rows, 1
        ):
            lines.append(
                f"| {i} | {b_rps:.0f} | {w_rps:.0f} | {w_rps / b_rps:.2f} | {b99:.1f} | {p50:.1f} "
                f"| {p99:.1f} | {p99 / b99:.1f} | {b_cpu:.0f}, {w_cpu:.0f} | {b_err + w_err} |"
            )
        return "\n".join(lines)

    @property
    def ratios(self) -> list[float]:
        return [warden[0] / bare[0] for bare, warden in self.rounds]


def measure(rounds: int = ROUNDS) -> IngestRun:
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
        bare = [sys.executable, "-m", "uvicorn", "tests.bench.bare:app", "--port", str(bare_port)]
        processes = [
            start([sys.executable, "-m", "service"], env, warden_port),
            start([*bare, "--log-level", "warning", "--no-access-log"], env, bare_port),
        ]
        use_wrk = shutil.which("wrk") is not None
        n = WRK_BODIES if use_wrk else REQUESTS
        try:
            rows, cpu = [], []
            bare_bodies = signed_bodies(min(n, 5000), "bare")  # the bare endpoint reads them, nothing more
            for round_ in range(rounds):
                row, used = [], []
                targets = ((bare_port, processes[1].pid, bare_bodies),)
                targets += ((warden_port, processes[0].pid, signed_bodies(n, f"w{round_}")),)
                for port, pid, bodies in targets:
                    url = f"http://127.0.0.1:{port}/webhook"
                    before = cpu_seconds(pid)
                    row.append(load_wrk(url, bodies, tmp) if use_wrk else load_aiohttp(url, bodies))
                    used.append((cpu_seconds(pid) - before) * 1e6 / max(row[-1][3], 1))
                rows.append((row[0], row[1]))
                cpu.append((used[0], used[1]))
            queued = redis.Redis.from_url(server.url).zcard("warden:queue")
        finally:
            for process in processes:
                process.terminate()
                process.wait()
    loader = "wrk, 1 thread" if use_wrk else "aiohttp in the benchmark's process"
    return IngestRun(rows, cpu, queued, sum(min(w[3], n) for _, w in rows), loader)


def main() -> None:
    run = measure()
    print(run.table())
    print(
        f"\n{run.queued} jobs queued for {run.answered} distinct webhooks answered by Warden ({run.loader})"
    )


if __name__ == "__main__":
    main()
