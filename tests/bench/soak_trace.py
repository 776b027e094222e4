"""`SOAK_TRACE=1`: the worker's Python memory during the soak (`tests/bench/trace/sitecustomize.py` takes
the snapshots), and what the soak reports of it: RSS beside the memory Python traced, the lines whose
allocations grew most between the first snapshot after the warm-up and the last, and the object types
whose counts grew most."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

HOOK = Path(__file__).resolve().parent / "trace"


def environ(tmp: Path) -> dict[str, str]:
    """The variables that arm the hook in the soak's worker (none unless SOAK_TRACE is set)."""
    if not os.environ.get("SOAK_TRACE"):
        return {}
    folder = tmp / "trace"
    folder.mkdir()
    path = os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "SOAK_TRACE_DIR": str(folder)}


def report(tmp: Path, warm_up: float) -> list[str]:
    folder = tmp / "trace"
    figures = [json.loads(line) for line in (folder / "worker.jsonl").read_text().splitlines()]
    snaps = sorted(folder.glob("worker-*.snap"))
    after = [s for s in snaps if float(s.stem.split("-")[1]) >= warm_up]
    if len(after) < 2:
        return ["Traced: too few snapshots after the warm-up.", ""]
    first, last = (tracemalloc.Snapshot.load(str(s)) for s in (after[0], after[-1]))
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    first, last = first.filter_traces(ignore), last.filter_traces(ignore)
    grew = last.compare_to(first, "lineno")[:10]
    start = next(f for f in figures if f["at"] >= warm_up)
    end = figures[-1]
    types = sorted(((n - start["objects"].get(t, 0), t, n) for t, n in end["objects"].items()), reverse=True)[
        :8
    ]
    return [
        f"Traced (`SOAK_TRACE=1`, the worker under `tracemalloc`, 5 frames): from {start['at']:.0f} s to "
        f"{end['at']:.0f} s the worker's RSS went {start['rss_mb']:.1f} → {end['rss_mb']:.1f} MB and the "
        f"memory Python traced {start['traced_mb']:.2f} → {end['traced_mb']:.2f} MB.",
        "",
        "| s | RSS MB | traced MB |",
        "| --- | --- | --- |",
        *(f"| {f['at']:.0f} | {f['rss_mb']:.1f} | {f['traced_mb']:.2f} |" for f in figures),
        "",
        f"Lines whose allocations grew most between {after[0].stem} and {after[-1].stem}:",
        "",
        "```",
        *(str(stat) for stat in grew),
        "```",
        "",
        "Object types whose counts grew most: "
        + ", ".join(f"{t} {n - d:,} → {n:,}" for d, t, n in types)
        + ".",
        "",
    ]
