"""Warden's own processes (web, worker, migrations) started as the Procfile starts them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.embedded_redis import free_port
from tests.conftest import KEY, SECRET

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 30.0


@dataclass
class Warden:
    url: str
    env: dict[str, str]
    logs: Path

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


def procfile() -> dict[str, str]:
    """The Procfile's process types and commands."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name.strip(): cmd.strip() for name, _, cmd in (line.partition(":") for line in lines if line.strip())
    }


@contextlib.contextmanager
def run_warden(tmp: Path, **env: str) -> Iterator[Warden]:
    """Run release, then web and worker, each with the Procfile's command; stop them afterwards."""
    full_env = {
        **os.environ,
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "LIVEKIT_URL": "http://127.0.0.1:7880",
        "PORT": str(free_port()),
        "WARDEN_HOST": "127.0.0.1",
        **env,
    }
    commands = procfile()
    python = [sys.executable if part == "python" else part for part in commands["release"].split()]
    subprocess.run(python, env=full_env, cwd=ROOT, check=True, capture_output=True)
    children = []
    try:
        for name in ("worker", "web"):
            argv = [sys.executable if p == "python" else p for p in commands[name].split()]
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            children.append(
                (subprocess.Popen(argv, env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log)
            )
        url = f"http://127.0.0.1:{full_env['PORT']}"
        _wait_ready(url, children)
        yield Warden(url, full_env, tmp)
    finally:
        for process, _ in children:
            process.terminate()
        for process, log in children:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_ready(url: str, children: list[tuple[subprocess.Popen[bytes], object]]) -> None:
    """Poll /readyz: a process that is still starting has no event to await."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p, _ in children):
            raise RuntimeError("a Warden process exited during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("Warden did not become ready")
