"""`python -m tests.bench.profile_worker`: the worker (`python -m workers`) under a sampling profiler
that counts CPU time, not wall time: a `SIGPROF` interval timer (`ITIMER_PROF`, which runs only while
the process runs) takes the running Python stack every millisecond of the process's CPU. On a loaded
machine a wall-clock profiler charges a function for the time the process waited for a core; this one
charges only what the process used.

To profile a benchmark's worker, put this command on the Procfile's `worker:` line for the run. The
stacks are written, collapsed ("frame;frame;frame count", as flame-graph tools read them), to
`$BENCH_PROFILE` (default `var/worker.stacks`) when the worker stops; `python -m
tests.bench.profile_report <file>` sums them by what the CPU was spent on. `BENCH_PROFILE_STAMPED=1`
puts the sample's wall-clock time (`@<unix seconds, one decimal>`) first in each stack, so that a part of
the run can be picked out (`profile_report --between <from> <to>`). `SIGUSR1` drops the stacks taken so
far (the watch benchmark sends it when its measured part begins: start-up and set-up left out).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from types import FrameType

from workers.__main__ import main as worker_main

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.001  # seconds of the process's CPU time between samples


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_qualname} ({code.co_filename}:{code.co_firstlineno})"


def main() -> None:
    out = Path(os.environ.get("BENCH_PROFILE", ROOT / "var" / "worker.stacks"))
    stacks: Counter[tuple[str, ...]] = Counter()

    stamped = os.environ.get("BENCH_PROFILE_STAMPED") == "1"

    def sample(_signum: int, frame: FrameType | None) -> None:
        names = []
        while frame is not None:
            names.append(_where(frame))
            frame = frame.f_back
        if stamped:
            names.append(f"@{time.time():.1f}")
        stacks[tuple(reversed(names))] += 1

    signal.signal(signal.SIGPROF, sample)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: stacks.clear())
    signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)
    try:
        worker_main()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(f"{';'.join(stack)} {n}\n" for stack, n in stacks.items()))


if __name__ == "__main__":
    main()
