"""`SOAK_TRACE=1 make soak`: the worker's Python memory, traced. On PYTHONPATH for the soak's processes
only then; in the worker (`python -m workers`) it starts `tracemalloc` and, every 30 s, writes a snapshot
and a line of figures (RSS, memory traced, objects by type) to `$SOAK_TRACE_DIR`. The soak diffs the
first snapshot after its warm-up against the last (`tests.bench.soak`), which tells a leak (traced memory
and objects that keep growing, with the lines that allocate them) from an allocator or a C library
warming up (RSS growing while traced memory stays flat).
"""

from __future__ import annotations

import os
import sys
import threading

EVERY = 30.0


def _watch(folder: str) -> None:
    import collections
    import gc
    import json
    import re
    import time
    import tracemalloc

    started = time.monotonic()
    while True:
        time.sleep(EVERY)
        at = time.monotonic() - started
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(os.path.join(folder, f"worker-{at:06.0f}.snap"))
        counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
        with open(f"/proc/{os.getpid()}/status") as status:
            rss = re.search(r"VmRSS:\s+(\d+) kB", status.read())
        line = {
            "at": at,
            "rss_mb": int(rss[1]) / 1024 if rss else 0.0,
            "traced_mb": tracemalloc.get_traced_memory()[0] / 2**20,
            "objects": dict(counts.most_common(40)),
        }
        with open(os.path.join(folder, "worker.jsonl"), "a") as out:
            out.write(json.dumps(line) + "\n")


if os.environ.get("SOAK_TRACE_DIR") and sys.orig_argv[1:3] == ["-m", "workers"]:
    import tracemalloc

    tracemalloc.start(5)
    threading.Thread(target=_watch, args=(os.environ["SOAK_TRACE_DIR"],), daemon=True, name="trace").start()
