"""Warden's own processes (web, worker, migrations) started as the Procfile starts them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from devtools.embedded_redis import free_port
from tests.support.settings import KEY, SECRET

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0


def procfile() -> dict[str, str]:
    """The Procfile's process types and commands."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name.strip(): cmd.strip() for name, _, cmd in (line.partition(":") for line in lines if line.strip())
    }


def procfile_argv(process_type: str) -> list[str]:
    return [sys.executable if part == "python" else part for part in procfile()[process_type].split()]


@dataclass
class Warden:
    url: str
    env: dict[str, str]
    logs: Path
    argv: dict[str, list[str]] = field(default_factory=dict)  # a command instead of the Procfile's, by type
    running: dict[str, list[tuple[subprocess.Popen[bytes], IO[bytes]]]] = field(default_factory=dict)

    def start(self, process_type: str) -> subprocess.Popen[bytes]:
        """Start one more process of a Procfile type, logging to `<logs>/<type>-<n>.log`."""
        same = self.running.setdefault(process_type, [])
        log = open(self.logs / f"{process_type}-{len(same)}.log", "wb")  # noqa: SIM115 - closed in stop()
        argv = self.argv.get(process_type) or procfile_argv(process_type)
        process = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        same.append((process, log))
        return process

    def kill(self, process_type: str) -> None:
        """SIGKILL every running process of that type: no clean-up, as when a machine dies."""
        for process, _ in self.running.get(process_type, []):
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        everything = [entry for entries in self.running.values() for entry in entries]
        for process, _ in everything:
            if process.poll() is None:
                process.terminate()
        for process, log in everything:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def wait_ready(self) -> None:
        """Poll /readyz: a process that is still starting has no event to await."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if any(p.poll() is not None for entries in self.running.values() for p, _ in entries):
                raise RuntimeError(f"a Warden process exited during start-up:\n{self.log_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("Warden did not become ready")


@contextlib.contextmanager
def run_warden(tmp: Path, argv: dict[str, list[str]] | None = None, **env: str) -> Iterator[Warden]:
    """Run release, then web and worker, each with the Procfile's command (or the one `argv` gives for
    its type, such as a profiled worker); stop them afterwards."""
    full_env = {
        **os.environ,
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "LIVEKIT_URL": "http://127.0.0.1:7880",
        "PORT": str(free_port()),
        "WARDEN_HOST": "127.0.0.1",
        **env,
    }
    subprocess.run(procfile_argv("release"), env=full_env, cwd=ROOT, check=True, capture_output=True)
    warden = Warden(f"http://127.0.0.1:{full_env['PORT']}", full_env, tmp, argv or {})
    try:
        warden.start("worker")
        warden.start("web")
        warden.wait_ready()
        yield warden
    finally:
        warden.stop()
