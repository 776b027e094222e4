"""`python -m tests.support.run` (`make test`'s runner) as a developer uses it: a Ctrl-C in the terminal
(SIGINT to the whole process group) stops the pytest it started, and the runner ends with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.postgres import POSTGRES_ADMIN_URL, ROOT, answers

SLOW_TEST = """
import pathlib, time

def test_waits():
    pathlib.Path({started!r}).write_text("started")
    time.sleep(60)
"""


def test_ctrl_c_stops_the_runs_pytest(tmp_path: Path) -> None:
    if not answers(POSTGRES_ADMIN_URL):
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN_URL}: the runner would start one of its own")
    started = tmp_path / "started"
    (tmp_path / "test_slow.py").write_text(SLOW_TEST.format(started=str(started)))
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.run",
            str(tmp_path / "test_slow.py"),
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env={**os.environ, "WARDEN_TEST_POSTGRES_URL": POSTGRES_ADMIN_URL},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job is
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert runner.poll() is None, runner.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "the runner's pytest never started its test"
            time.sleep(0.1)
        os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            output, _ = runner.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl-C did not stop the runner's pytest: the run went on")
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.communicate()
    said = output.decode(errors="replace")
    assert runner.returncode == 2, said  # pytest's status for a run interrupted
    assert "KeyboardInterrupt" in said


def test_free_port_never_hands_one_port_out_twice_in_a_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A shard's range, its ports claimed for every process of the run: a port is handed out once, a
    port in use is passed over, and a range used up goes on above every range."""
    from devtools import embedded_redis

    base = next(p for p in range(26000, 32000, 3) if all(_free(p + n) for n in range(3)))
    monkeypatch.setenv("WARDEN_TEST_PORT_BASE", str(base))
    monkeypatch.setenv("WARDEN_TEST_PORT_SPAN", "3")
    monkeypatch.setenv("WARDEN_TEST_PORT_CLAIMS", str(tmp_path))
    monkeypatch.setattr(embedded_redis, "_HANDED_OUT", set())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 1))
        busy.listen()
        first = embedded_redis.free_port()
        assert first == base
        monkeypatch.setattr(embedded_redis, "_HANDED_OUT", set())  # another process of the run (a Warden)
        assert embedded_redis.free_port() == base + 2
        assert embedded_redis.free_port() >= 32000
    monkeypatch.delenv("WARDEN_TEST_PORT_BASE")  # outside the suite (`make run`): any free port, once each
    handed = {embedded_redis.free_port() for _ in range(50)}
    assert len(handed) == 50


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
