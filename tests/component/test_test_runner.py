"""`python -m tests.support.run` (`make test`'s runner) as a developer uses it: a Ctrl-C in the terminal
(SIGINT to the whole process group) stops the pytest it started, and the runner ends with it."""

from __future__ import annotations

import contextlib
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
    runners: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(runs):
            test = tmp_path / f"run{n}" / "test_ports.py"
            test.parent.mkdir()
            mine = tmp_path / f"ports-{n}"
            test.write_text(PORTS_TEST.format(mine=str(mine), folder=str(tmp_path), runs=runs))
            runners.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.support.run", str(test), "-q", "-p", "no:cacheprovider"],
                    cwd=ROOT,
                    # Runs beside this one (other worktrees' suites) may hold every range of ports: a
                    # runner then gives up saying so, rather than this test waiting on it for ever.
                    env={
                        **os.environ,
                        "WARDEN_TEST_POSTGRES_URL": POSTGRES_ADMIN_URL,
                        "WARDEN_TEST_PORT_WAIT": "30",
                    },
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its pytest and Redis in its process group, killed with it
                )
            )
        deadline = time.monotonic() + 120
        outputs = []
        for runner in runners:
            try:
                output, _ = runner.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"a runner went on for over 120 s: {[r.poll() for r in runners]}")
            outputs.append(output.decode(errors="replace"))
    finally:
        for runner in runners:  # the runner, and whatever of its pytest and Redis outlived it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid, signal.SIGKILL)
            runner.communicate()
    waited = [output for output in outputs if "test ports" in output]
    assert not waited, f"runs beside this one held the test ports it needed: {waited}"
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


def test_three_whole_suites_at_once_leave_ports_for_focused_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Three worktrees' `make test` at once: a focused run beside them still gets its ports at once, and
    so does a fourth whole suite."""
    from tests.support import run

    monkeypatch.setattr(port_claims, "LOCKS", tmp_path)
    with contextlib.ExitStack() as suites:
        blocks = [
            suites.enter_context(port_claims.claimed(run.PORT_BLOCK // run.SHARD_PORTS)) for _ in range(3)
        ]
        with port_claims.claimed(1, wait=0) as focused, port_claims.claimed(8, wait=0) as fourth:
            assert focused not in range(min(blocks), max(blocks) + run.PORT_BLOCK)
            assert fourth not in blocks


def test_a_run_that_finds_every_port_claimed_gives_up_when_told_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every range of test ports held by runs beside it: with WARDEN_TEST_PORT_WAIT, the run fails after
    that many seconds, saying why, rather than waiting for ever."""
    locks = tmp_path / "warden-test-ports"  # where a runner with TMPDIR=tmp_path claims its ports
    monkeypatch.setattr(port_claims, "LOCKS", locks)
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    with contextlib.ExitStack() as others:
        for _ in range((port_claims.LAST_PORT - port_claims.FIRST_PORT) // port_claims.SLOT):
            others.enter_context(port_claims.claimed(1, wait=0))
        runner = subprocess.run(
            [sys.executable, "-m", "tests.support.run", str(tmp_path / "test_nothing.py"), "-q"],
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(tmp_path), "WARDEN_TEST_PORT_WAIT": "1"},
            capture_output=True,
            timeout=60,
        )
    said = runner.stdout.decode(errors="replace")
    assert runner.returncode == 6, said
    assert "waiting" in said and "stayed claimed by other runs for 1.0 s; not run" in said, said


def test_a_run_deletes_the_private_postgresql_it_made(tmp_path: Path) -> None:
    """No PostgreSQL answering: the run makes a cluster of its own (~40 MB) and leaves none behind."""
    from tests.support import postgres

    if postgres._binaries() is None:
        pytest.skip("no PostgreSQL binaries: the runner would install them")
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    runner = subprocess.run(
        [sys.executable, "-m", "tests.support.run", str(tmp_path / "test_nothing.py"), "-q"],
        cwd=ROOT,
        env={**os.environ, "WARDEN_TEST_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{_closed_port()}/x"},
        capture_output=True,
        timeout=120,
    )
    said = runner.stdout.decode(errors="replace")
    assert runner.returncode == 0, said
    made = Path(said.split("started a private PostgreSQL on ")[1].split("(")[1].split(")")[0])
    assert made.parent.parent == postgres.PRIVATE_DIR, said
    assert not made.parent.exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_run_deletes_the_clusters_of_runs_that_were_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Runs killed before deleting their private PostgreSQL: the next run deletes each cluster whose run
    is gone, and keeps the one of a run still going and one a server still runs on."""
    from tests.support import run

    monkeypatch.setattr(port_claims, "LOCKS", tmp_path / "locks")
    base = tmp_path / "test-pg"
    for folder in ("10000", "10500", "11000", "data"):  # "data": the layout before a folder per run
        (base / folder / "data").mkdir(parents=True)
    (base / "data" / "postmaster.pid").write_text("999999999\n")  # its server is gone
    (base / "postgres.log").write_text("the old layout's log\n")
    (base / "11000" / "data" / "postmaster.pid").write_text(f"{os.getpid()}\n")  # a server runs on it
    with port_claims.claimed(1) as going:  # a run beside this one, still going
        (base / str(going) / "data").mkdir(parents=True)
        run.clear_stale_clusters(base)
        assert sorted(p.name for p in base.iterdir()) == sorted(["11000", str(going)])
