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

from tests.support import port_claims
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


PORTS_TEST = """
import pathlib, time

from devtools.embedded_redis import free_port


def test_hands_out_ports_while_the_other_runs_do():
    pathlib.Path({mine!r}).write_text(" ".join(str(free_port()) for _ in range(20)))
    deadline = time.monotonic() + 60
    while len(list(pathlib.Path({folder!r}).glob("ports-*"))) < {runs}:  # every run holds its ports now
        assert time.monotonic() < deadline, "the other runs never handed out their ports"
        time.sleep(0.05)
"""


def test_runs_at_once_never_hand_out_one_port(tmp_path: Path) -> None:
    """Four focused runs at once (in several worktrees, say; more than the three blocks of ports a run
    once picked by its process id): no port handed out by two of them, and every run passes."""
    if not answers(POSTGRES_ADMIN_URL):
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN_URL}: each runner would start one of its own")
    runs = 4
    runners = []
    for n in range(runs):
        test = tmp_path / f"run{n}" / "test_ports.py"
        test.parent.mkdir()
        mine = tmp_path / f"ports-{n}"
        test.write_text(PORTS_TEST.format(mine=str(mine), folder=str(tmp_path), runs=runs))
        runners.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.support.run", str(test), "-q", "-p", "no:cacheprovider"],
                cwd=ROOT,
                env={**os.environ, "WARDEN_TEST_POSTGRES_URL": POSTGRES_ADMIN_URL},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [runner.communicate(timeout=120)[0].decode(errors="replace") for runner in runners]
    assert [runner.returncode for runner in runners] == [0] * runs, outputs
    handed = [(tmp_path / f"ports-{n}").read_text().split() for n in range(runs)]
    every = [port for ports in handed for port in ports]
    assert len(every) == len(set(every)) == 20 * runs, handed


HOLDS_A_RANGE = """
import pathlib, sys

from tests.support import port_claims

port_claims.LOCKS = pathlib.Path(sys.argv[1])
with port_claims.claimed(1) as first:
    print(first, flush=True)
    sys.stdin.read()
"""


def test_a_range_claimed_by_a_run_that_died_is_free_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(port_claims, "LOCKS", tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDS_A_RANGE, str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    held = int(holder.stdout.readline())
    with port_claims.claimed(1) as beside, port_claims.claimed(1) as third:
        assert len({held, beside, third}) == 3  # each its own range while the first is held
    holder.kill()  # SIGKILL: nothing of its own runs on the way out; the kernel lets its lock go
    holder.communicate()
    with port_claims.claimed(1) as again:
        assert again == held
