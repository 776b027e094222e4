"""`SOAK_TRACE=1 make soak`: where the worker's memory goes. On PYTHONPATH for the soak's processes only
then; in the worker (`python -m workers`) a thread writes, every 30 s, a line of figures to
`$SOAK_TRACE_DIR/worker.jsonl`: RSS, the blocks Python's allocator holds (`sys.getallocatedblocks`), the
memory SQLite holds (`sqlite3_memory_used`: page caches, statements), what glibc's malloc has handed
out and what it keeps free (`mallinfo2`, every arena, every thread), and the objects by type.
`SOAK_TRACE=tracemalloc` also runs `tracemalloc` (one frame) and dumps a snapshot each time, which the
soak diffs (`tests.bench.soak_trace`); it slows the worker down several times, so its other figures
are not the soak's. Python's blocks and objects growing with the lines that allocate them is a leak; RSS
growing while they stay flat is an allocator or a C library (SQLite's page caches) warming up.
"""

from __future__ import annotations

import os
import sys
import threading

EVERY = 30.0


def _sqlite_memory() -> object:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return lambda: 0
    used = ctypes.CDLL(name).sqlite3_memory_used  # the library _sqlite3 links: the same counters
    used.restype = ctypes.c_int64
    return used


def _malloc() -> object:
    """glibc's mallinfo2 over all its arenas: (bytes in use, bytes free but kept), or None elsewhere."""
    import ctypes

    names = [
        "arena",
        "ordblks",
        "smblks",
        "hblks",
        "hblkhd",
        "usmblks",
        "fsmblks",
        "uordblks",
        "fordblks",
        "keepcost",
    ]

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in names]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return lambda: None
    mallinfo2.restype = MallInfo2

    def read() -> tuple[float, float]:
        info = mallinfo2()
        return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20

    return read


def _watch(folder: str, traced: bool) -> None:
    import collections
    import gc
    import json
    import re
    import time
    import tracemalloc

    sqlite_used, malloc = _sqlite_memory(), _malloc()
    started = time.monotonic()
    while True:
        time.sleep(EVERY)
        at = time.monotonic() - started
        if traced:
            tracemalloc.take_snapshot().dump(os.path.join(folder, f"worker-{at:06.0f}.snap"))
        counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
        with open(f"/proc/{os.getpid()}/status") as status:
            rss = re.search(r"VmRSS:\s+(\d+) kB", status.read())
        line = {
            "at": at,
            "rss_mb": int(rss[1]) / 1024 if rss else 0.0,
            "blocks": sys.getallocatedblocks(),
            "sqlite_mb": sqlite_used() / 2**20,  # type: ignore[operator]
            "malloc_mb": malloc(),  # type: ignore[operator]
            "traced_mb": tracemalloc.get_traced_memory()[0] / 2**20 if traced else None,
            "objects": dict(counts.most_common(40)),
        }
        with open(os.path.join(folder, "worker.jsonl"), "a") as out:
            out.write(json.dumps(line) + "\n")


if os.environ.get("SOAK_TRACE_DIR") and sys.orig_argv[1:3] == ["-m", "workers"]:
    traced = os.environ.get("SOAK_TRACE") == "tracemalloc"
    if traced:
        import tracemalloc

        tracemalloc.start(1)
    folder = os.environ["SOAK_TRACE_DIR"]
    threading.Thread(target=_watch, args=(folder, traced), daemon=True, name="soak-trace").start()
