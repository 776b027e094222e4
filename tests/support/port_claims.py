"""Loopback port ranges for test runs, claimed machine-wide: two `python -m tests.support.run` at once (in
one worktree or several) never hand out the same port.

The ports from `FIRST_PORT` up to the OS's ephemeral ports (32768) are cut into slots of `SLOT` ports: 44
slots, room for five whole-suite runs at once (eight aligned slots each), or three beside twenty focused
runs. A run claims the slots it needs (a focused run one, the whole suite a block of them, aligned) by
holding an exclusive `flock` on a file per slot in `LOCKS` (in the machine's temporary directory) for as
long as it runs: a lock is the kernel's, so it is let go when the run's process ends however it ends, and a
slot is never left claimed by a run that died. When every slot is claimed, the run waits for one (saying
so), for at most `WARDEN_TEST_PORT_WAIT` seconds when that is set (`NoSlots` then: the run fails saying why).
Within a run, `devtools.embedded_redis.free_port` hands each port out once (a claims directory of the
run's own) and passes over a port something else listens on.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Below the OS's ephemeral ports (32768 up): a port above may be taken by any outgoing connection. A port
# in the range that something else listens on is passed over (`devtools.embedded_redis.free_port`).
FIRST_PORT, LAST_PORT = 10000, 32000
SLOT = 500
LOCKS = Path(tempfile.gettempdir()) / "warden-test-ports"
WAIT_SECONDS = 1.0


class NoSlots(Exception):
    """Every range of test ports the run needs stayed claimed by other runs for as long as it would wait."""


def _try_claim(first: int, slots: int) -> list[int] | None:
    """The lock files' descriptors of the `slots` slots from port `first`, each locked; None (and nothing
    held) when another run holds any of them."""
    held: list[int] = []
    for port in range(first, first + slots * SLOT, SLOT):
        fd = os.open(LOCKS / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            for other in held:
                os.close(other)  # closing the descriptor lets its lock go
            return None
        held.append(fd)
    return held


def unclaimed(port: int) -> bool:
    """Whether no run holds the slot from `port` now (looked at by claiming it for a moment)."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    held = _try_claim(port, 1)
    for fd in held or []:
        os.close(fd)
    return held is not None


@contextlib.contextmanager
def claimed(slots: int, *, say: bool = True, wait: float | None = None) -> Iterator[int]:
    """Claim `slots` consecutive slots (aligned on a multiple of them) for as long as the block lasts;
    yields the first port. Waits while every such range is claimed by other runs: for ever, or `wait`
    seconds and then raises `NoSlots`."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    starts = range(FIRST_PORT, LAST_PORT - slots * SLOT + 1, slots * SLOT)
    if not starts:
        raise ValueError(f"{slots} slots of {SLOT} ports do not fit in {FIRST_PORT}-{LAST_PORT}")
    deadline = None if wait is None else time.monotonic() + wait
    waited = False
    while True:
        # A focused run's slot from the top, a whole suite's block from the bottom: one beside the other
        # splits as few blocks as it can.
        for first in reversed(starts) if slots == 1 else starts:
            held = _try_claim(first, slots)
            if held is not None:
                try:
                    yield first
                finally:
                    for fd in held:
                        os.close(fd)
                return
        if deadline is not None and time.monotonic() >= deadline:
            raise NoSlots(
                f"every range of {slots * SLOT} test ports stayed claimed by other runs for {wait} s"
            )
        if say and not waited:
            print(
                f"tests: every range of {slots * SLOT} test ports is claimed by another run; waiting",
                flush=True,
            )
            waited = True
        time.sleep(WAIT_SECONDS)
