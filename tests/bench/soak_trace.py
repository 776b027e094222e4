"""`SOAK_TRACE=1` (or `=tracemalloc`): where the worker's memory goes during the soak
(`tests/bench/trace/sitecustomize.py` takes the figures), and what the soak reports of it: RSS beside
Python's allocated blocks, SQLite's memory and, with tracemalloc, the lines whose allocations grew most
between the first snapshot after the warm-up and the last; the object types whose counts grew most."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

HOOK = Path(__file__).resolve().parent / "trace"


def environ(tmp: Path) -> dict[str, str]:
    """The variables that arm the hook in the soak's worker (none unless SOAK_TRACE is set)."""
    if not os.environ.get("SOAK_TRACE"):
        return {}
    folder = tmp / "trace"
    folder.mkdir()
    path = os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "SOAK_TRACE_DIR": str(folder)}


def _grew(folder: Path, warm_up: float) -> list[str]:
    snaps = sorted(folder.glob("worker-*.snap"))
    after = [s for s in snaps if float(s.stem.split("-")[1]) >= warm_up]
    if len(after) < 2:
        return []
    first, last = (tracemalloc.Snapshot.load(str(s)) for s in (after[0], after[-1]))
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    grew = last.filter_traces(ignore).compare_to(first.filter_traces(ignore), "lineno")[:10]
    return (
        [f"Lines whose allocations grew most ({after[0].stem} → {after[-1].stem}):", "", "```"]
        + [str(stat) for stat in grew]
        + ["```", ""]
    )


def _malloc(figures: dict[str, Any], which: int) -> str:
    found = figures.get("malloc_mb")
    return "-" if not found else f"{found[which]:.1f}"


def report(tmp: Path, warm_up: float) -> list[str]:
    folder = tmp / "trace"
    figures = [json.loads(line) for line in (folder / "worker.jsonl").read_text().splitlines()]
    after = [f for f in figures if f["at"] >= warm_up]
    if len(after) < 2:
        return ["Traced: too few samples after the warm-up.", ""]
    start, end = after[0], after[-1]
    both = [(t, start["objects"][t], n) for t, n in end["objects"].items() if t in start["objects"]]
    types = sorted(((n - before, t, n) for t, before, n in both), reverse=True)  # of the 40 commonest

    def traced(f: dict[str, float]) -> str:
        return "-" if f["traced_mb"] is None else f"{f['traced_mb']:.2f}"

    return [
        f"Traced (`SOAK_TRACE={os.environ.get('SOAK_TRACE')}`): the worker's memory every 30 s.",
        "",
        "| s | RSS MB | Python blocks | objects | SQLite MB | malloc in use MB | malloc free MB "
        "| tracemalloc MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {f['at']:.0f} | {f['rss_mb']:.1f} | {f['blocks']:,} | {sum(f['objects'].values()):,} "
            f"| {f['sqlite_mb']:.2f} | {_malloc(f, 0)} | {_malloc(f, 1)} | {traced(f)} |"
            for f in figures
        ),
        "",
        *_grew(folder, warm_up),
        f"Object types whose counts grew most from {start['at']:.0f} s to {end['at']:.0f} s: "
        + ", ".join(f"{t} {n - d:,} → {n:,}" for d, t, n in types[:8])
        + ".",
        "",
    ]
