"""`make bench`: every benchmark, one after the other, each beside its baseline from the same run.
Writes `docs/benchmarks/results.md` (the tables, with the machine and the commit) and
`docs/benchmarks/scaling.svg` (cost from 100 to 10,000 rooms), and prints the tables.

PostgreSQL runs use a fresh database on the server the tests use (`WARDEN_TEST_POSTGRES_URL`, default
postgres@127.0.0.1:5432), else on a private cluster started for the run (as `make test` does); without
either they are left out, and the report says so. The report opens with the issue's targets, each with
its figure from this run. `BENCH_QUICK=1` runs
smaller sizes (a smoke test of the harness, not figures to quote).

`python -m tests.bench.run bigroom` runs the big-room benchmark alone (issue 24), `python -m
tests.bench.run outage` the outage's (issues 23 and 30), `python -m tests.bench.run watch` the canaries'
and liveness reads' (issue 30), and puts its section in place in `results.md`, leaving the others as
they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from devtools.embedded_redis import EmbeddedRedis
from tests.bench import bigroom, ingest, plot, reaction, targets, watch, worker
from tests.bench import pg as pg_server
from tests.bench.pg import fresh_database
from tests.support.processes import ROOT

QUICK = os.environ.get("BENCH_QUICK") == "1"
OUT = ROOT / "docs" / "benchmarks"
SCALE = [100, 1000, 10000] if not QUICK else [10, 100]
WORKER_EVENTS, WORKER_ROOMS = (4000, 1000) if not QUICK else (400, 100)
REACTION_ROOMS = 1000 if not QUICK else 50
ARQ_JOBS = 5000 if not QUICK else 500
BIG_RUNS = 3 if not QUICK else 1  # the big-room benchmark's runs per database: the machine is noisy
BIG_TITLE = (
    f"Big room: {bigroom.STORM:,} joins to one room within one second and {bigroom.ROOMS} ordinary rooms "
    "(room_started + a join each), one worker"
)


def _events_for(rooms: int) -> int:
    """Four events a room (two joins, two leaves), two at 10,000 rooms to keep `make bench` short."""
    if rooms == WORKER_ROOMS:
        return WORKER_EVENTS
    return 2 * rooms if rooms >= 10000 else max(4 * rooms, 400)


def _page_name(path: str) -> str:
    return "/ (dashboard)" if path == "/" else path


def _section(lines: list[str], title: str, body: str) -> None:
    print(f"\n## {title}\n\n{body}", flush=True)
    lines += [f"## {title}", "", body, ""]


def main() -> None:
    with pg_server.server():
        if sys.argv[1:] == ["bigroom"]:
            _bigroom_only()
        elif sys.argv[1:] == ["outage"]:
            _outage_only()
        elif sys.argv[1:] == ["watch"]:
            _watch_only()
        else:
            _main()


def _bigroom(pg: bool) -> tuple[str, dict[str, str]]:
    """The big-room section's table (`BIG_RUNS` runs per database) and its target figures (ranges)."""
    runs: list[bigroom.BigRoomRun] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis:
        for n, at_once in ((n, at_once) for at_once in (False, True) for n in range(BIG_RUNS)):
            runs.append(
                bigroom.measure(f"sqlite:///{tmp}/big{n}{at_once}.db", redis.url, "SQLite", at_once=at_once)
            )
            url = fresh_database("warden_bench") if pg else None
            if url is not None:
                runs.append(bigroom.measure(url, redis.url, "PostgreSQL", at_once=at_once))

    def span(values: list[float], unit: str, digits: int) -> str:
        return f"{min(values):.{digits}f}-{max(values):.{digits}f} {unit}"

    figures = {
        "big_rooms": span([r.ordinary_max for r in runs], "s", 2) + " (max of each run)",
        "big_settled": span([r.settled for r in runs], "s", 1)
        + f", worker CPU {span([r.cpu for r in runs], 's', 1)}",
    }
    return bigroom.table(runs), figures


OUTAGE_TITLE = "Outage: "


def _outage(pg: bool) -> tuple[str, str, dict[str, str]]:
    """The outage section (issues 23 and 30): its title, table and target figures."""
    rows = [
        "| database | breach → RestartAgent ms | deployment back → re-dispatch p50 ms | p99 ms | max ms "
        "| worker CPU ms a re-dispatched room |",
        "|---" * 6 + "|",
    ]
    esc, recovery, p99, cpu = [], [], [], []
    for name in ("PostgreSQL", "SQLite") if pg else ("SQLite",):
        url = fresh_database("warden_bench") if name == "PostgreSQL" else None
        r = reaction.measure(REACTION_ROOMS, 0.0, 10.0, 1, url, outage=True)
        assert r.restart_after is not None and r.recovery is not None
        esc.append(f"{r.restart_after * 1000:.0f} ms ({name})")
        recovery.append(f"{r.ms(50, r.recovery) / 1000:.1f} / {r.ms(99, r.recovery) / 1000:.1f} s ({name})")
        p99.append(f"{r.ms(99, r.recovery) / 1000:.1f} s ({name})")
        cpu.append(f"{r.recovery_cpu * 1000 / r.rooms:.1f} ms ({name}, from the return)")
        rows.append(
            f"| {name} | {r.restart_after * 1000:.0f} | {r.ms(50, r.recovery):.0f} "
            f"| {r.ms(99, r.recovery):.0f} | {r.recovery[-1] * 1000:.0f} "
            f"| {r.recovery_cpu * 1000 / r.rooms:.1f} |"
        )
    figures = {
        "esc": ", ".join(esc),
        "recovery": ", ".join(recovery),
        "recovery_p99": ", ".join(p99),
        "room_cpu": ", ".join(cpu),
    }
    title = (
        f"{OUTAGE_TITLE}{REACTION_ROOMS} rooms' SLAs in the same second, one worker, a Cloud agent whose "
        f"deployment runs again {reaction.COMES_BACK:g} s after RestartAgent "
        f"(WARDEN_OUTAGE_ROOMS={reaction.OUTAGE_ROOMS})"
    )
    return title, "\n".join(rows), figures


def _outage_only() -> None:
    """The outage benchmark alone: printed, and its section of `results.md` replaced."""
    load = os.getloadavg()[0]
    title, body, figures = _outage(fresh_database("warden_bench") is not None)
    print(f"\n## {title}\n\n{body}\n\n{figures}", flush=True)
    _replace_section(OUTAGE_TITLE, f"## {title}\n\n{body}\n\n{_alone('outage', load)}\n\n")


def _watch_only() -> None:
    """The watch benchmark alone: printed, and its section of `results.md` replaced (or added)."""
    load = os.getloadavg()[0]
    title, body, figures = watch.section(fresh_database(watch.DATABASE) is not None)
    print(f"\n## {title}\n\n{body}\n\n{figures['canaries']}", flush=True)
    _replace_section(watch.TITLE, f"## {title}\n\n{body}\n\n{_alone('watch', load)}\n\n")


def _alone(part: str, load: float) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return (
        f"Run alone (`python -m tests.bench.run {part}`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"{commit.stdout.strip() or 'unknown'}, load average before {load:.2f}."
    )


def _replace_section(starts: str, section: str) -> None:
    """`results.md` with its section whose title starts with `starts` replaced by `section` (added
    before the plot when it has none)."""
    results = OUT / "results.md"
    if QUICK or not results.exists():
        return
    text = results.read_text()
    start = text.find(f"## {starts}")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        at = text.find("![Cost from")
        text = text[:at] + section + text[at:] if at >= 0 else text + "\n" + section
    results.write_text(text)
    print(f"written: a section of {results}")


def _bigroom_only() -> None:
    """The big-room benchmark alone: printed, and its section of `results.md` replaced (or added)."""
    load = os.getloadavg()[0]
    pg = fresh_database("warden_bench") is not None
    body, figures = _bigroom(pg)
    print(f"\n## {BIG_TITLE}\n\n{body}\n", flush=True)
    print(
        f"ordinary rooms' events applied: {figures['big_rooms']}; big room settled: {figures['big_settled']}"
    )
    _replace_section("Big room:", f"## {BIG_TITLE}\n\n{body}\n\n{_alone('bigroom', load)}\n\n")


def _targets(figures: dict[str, str]) -> str:
    """The issues' targets, each with this run's figure (see `tests.bench.targets`)."""
    return (
        "## Targets (issue 30)\n\n"
        + targets.table(targets.ISSUE_30, figures)
        + "\n\n## Targets (issue 17)\n\n"
        + targets.table(targets.ISSUE_17, figures)
    )


def _main() -> None:
    started = time.monotonic()
    figures: dict[str, str] = {}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"{commit.stdout.strip() or 'unknown'}, {os.cpu_count()} cores, load average before "
        f"{os.getloadavg()[0]:.2f}. Method and reading: [../benchmarks.md](../benchmarks.md).",
        "",
    ]
    pg = fresh_database("warden_bench")
    if pg is None:
        lines += ["**No PostgreSQL answered: its rows are left out.**", ""]

    run = ingest.measure()
    body = (
        run.table()
        + f"\n\n{run.queued} jobs queued for {run.answered} distinct webhooks answered ({run.loader})."
    )
    _section(lines, "Ingest: signed webhooks/s through POST /webhook, ratio to bare Starlette", body)
    p99s = [warden[1][1] for _, warden in run.rounds]
    figures["ingest"] = (
        f"{min(run.ratios):.2f}-{max(run.ratios):.2f}x (p99 {min(p99s):.0f}-{max(p99s):.0f} ms), "
        f"{sum(b[2] + w[2] for b, w in run.rounds)} errors"
    )
    p99_ratios = [warden[1][1] / bare[1][1] for bare, warden in run.rounds]
    figures["ingest30"] = (
        f"{min(run.ratios):.2f}-{max(run.ratios):.2f}x; p99 {min(p99s):.0f}-{max(p99s):.0f} ms, "
        f"{min(p99_ratios):.1f}-{max(p99_ratios):.1f}x bare's"
    )

    rows = [
        "| database | rooms | arrivals over s | SLA s | p50 ms | p99 ms | max ms | target p99 ms |",
        "|---" * 8 + "|",
    ]
    rows[0] = rows[0].replace("| database |", "| database | workers |")
    rows[1] += "---|"
    cases = [
        ("PostgreSQL", pg, 20.0, 1, "react_pg"),
        ("SQLite", None, 20.0, 1, "react_sqlite"),
        ("PostgreSQL", pg, 0.0, 1, "burst"),
        ("PostgreSQL", pg, 0.0, 2, "burst2"),
    ]
    burst: dict[int, float] = {}
    burst_cpu = ""
    for name, url, spread, workers, key in cases:
        if name == "PostgreSQL" and url is None:
            continue
        if url is not None:
            url = fresh_database("warden_bench")
        r = reaction.measure(REACTION_ROOMS, spread, 10.0, workers, url)
        figures[key] = f"{r.ms(99) / 1000:.2f} s (p50 {r.ms(50) / 1000:.2f} s)"
        if key == "burst":
            burst_cpu = f"{r.worker_cpu * 1000 / r.rooms:.1f} ms (burst, PostgreSQL)"
        if spread == 0:
            burst[workers] = r.ms(99)
        rows.append(
            f"| {name} | {workers} | {r.rooms} | {spread:g} | {r.sla:g} | {r.ms(50):.0f} | {r.ms(99):.0f} "
            f"| {r.delays[-1] * 1000:.0f} | {5000 if spread == 0 else 1000} |"
        )
    if len(burst) == 2:
        figures["scale_burst"] = (
            f"{burst[2] / burst[1]:.2f}x ({burst[1] / 1000:.1f} s → {burst[2] / 1000:.1f} s)"
        )
    _section(lines, "Reaction: SLA expiry to CreateDispatch", "\n".join(rows))

    title, body, found = _outage(pg is not None)
    figures.update(found)
    if burst_cpu:
        figures["room_cpu"] = figures.get("room_cpu", "") + "; " + burst_cpu
    _section(lines, title, body)

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis:
        argv = [sys.executable, "-m", "tests.bench.arq_noop", redis.url, str(ARQ_JOBS)]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        stock, noop = (float(rate) for rate in out.split()[-2:])
        databases = [("PostgreSQL", "pg"), ("SQLite", "sqlite")] if pg else [("SQLite", "sqlite")]
        rows = [
            "| database | events | rooms | events/s | ratio to no-op jobs | worker CPU µs/event | RSS MiB |",
            "|---" * 7 + "|",
        ]
        for label, rate in (("ARQ's Worker", stock), ("Warden's ClaimingWorker", noop)):
            rows.append(
                f"| ({label}, no-op jobs) | {ARQ_JOBS} | — | {rate:.0f} | {rate / noop:.2f} | — | — |"
            )
        scaling: dict[str, list[worker.WorkerRun]] = {}
        for name, kind in databases:
            for rooms in SCALE if kind == "pg" or len(databases) == 1 else [WORKER_ROOMS]:
                count = _events_for(rooms)
                url = fresh_database("warden_bench") if kind == "pg" else f"sqlite:///{tmp}/w{rooms}.db"
                w = worker.measure(url or "", redis.url, count, rooms)
                scaling.setdefault(name, []).append(w)
                rows.append(
                    f"| {name} | {w.events} | {w.rooms} | {w.rate:.0f} | {w.rate / noop:.2f} "
                    f"| {w.cpu_us:.0f} | {w.rss_mib:.0f} |"
                )
                if rooms == WORKER_ROOMS and (kind == "pg" or not pg):
                    figures["cpu"] = f"{w.cpu_us:.0f} µs ({name})"
                    figures["ceiling"] = f"{w.rate / noop:.2f}x ({w.rate:.0f} of {noop:.0f}/s)"
                    if kind == "pg":
                        two = worker.measure(fresh_database("warden_bench") or "", redis.url, count, rooms, 2)
                        rows.append(
                            f"| {name}, two workers | {two.events} | {two.rooms} | {two.rate:.0f} "
                            f"| {two.rate / noop:.2f} | {two.cpu_us:.0f} (both) | — |"
                        )
                        figures["scale_rate"] = (
                            f"{two.rate / w.rate:.2f}x ({w.rate:.0f} → {two.rate:.0f}/s; CPU per event "
                            f"{w.cpu_us:.0f} → {two.cpu_us:.0f} µs, both workers)"
                        )
    title = "Worker: events/s per process (target 2,000 on PostgreSQL), ratio to no-op jobs"
    _section(lines, title, "\n".join(rows))

    pages = [
        "| database | rooms in database | " + " | ".join(f"`{p}` ms" for p in worker.PAGES) + " |",
        "|---" * 5 + "|",
    ]
    for name, runs in scaling.items():
        for w in runs:
            pages.append(
                f"| {name} | {w.rooms} | " + " | ".join(f"{w.pages_ms[p]:.0f}" for p in worker.PAGES) + " |"
            )
    _section(
        lines,
        "Operator pages with the rooms of the worker runs in the database (median of 7)",
        "\n".join(pages),
    )

    body, big = _bigroom(pg is not None)
    figures.update(big)
    _section(lines, BIG_TITLE, body)

    title, body, found = watch.section(pg is not None)
    figures.update(found)
    _section(lines, title, body)

    main_series = max(scaling.values(), key=len)
    xs = [w.rooms for w in main_series]
    svg = plot.figure(
        [
            plot.chart("Worker events/s", xs, {"events/s": [w.rate for w in main_series]}, "events/s"),
            plot.chart(
                "Worker CPU per event", xs, {"µs": [w.cpu_us for w in main_series]}, "µs", x=plot.WIDTH
            ),
            plot.chart("Worker RSS", xs, {"MiB": [w.rss_mib for w in main_series]}, "MiB", y=plot.HEIGHT),
            plot.chart(
                "Operator pages",
                xs,
                {
                    "/ (dashboard)" if p == "/" else p: [w.pages_ms[p] for w in main_series]
                    for p in worker.PAGES
                },
                "ms",
                x=plot.WIDTH,
                y=plot.HEIGHT,
            ),
        ]
    )
    which = "PostgreSQL" if pg else "SQLite"
    lines += [f"![Cost from {xs[0]:,} to {xs[-1]:,} rooms ({which})](scaling.svg)", ""]
    lines.append(f"`make bench` took {time.monotonic() - started:.0f} s.")
    first = next(i for i, line in enumerate(lines) if line.startswith("## "))  # the targets come first
    lines[first:first] = [_targets(figures), ""]
    print("\n" + _targets(figures), flush=True)
    if not QUICK:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "results.md").write_text("\n".join(lines) + "\n")
        (OUT / "scaling.svg").write_text(svg)
        print(f"\nwritten: {OUT / 'results.md'}, {OUT / 'scaling.svg'}")
    print(f"\n`make bench` took {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
