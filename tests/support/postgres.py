"""PostgreSQL for the test run: the server that answers at WARDEN_TEST_POSTGRES_URL, else a private one.

A private cluster is made with Debian's `postgresql` binaries (installed with apt-get when missing, as
root or with sudo), its data under `var/test-pg` in the build tree, on a free loopback port, and stopped
and deleted when the run ends (`tests.support.run`). `initdb` refuses to run as root, so as root the
cluster belongs to the `postgres` user and every PostgreSQL command runs through `runuser -u postgres --`.

The run's server is shared by every test (and by the e2e tier running beside the others): no test may
stop or restart it. A test that does so to a server makes one of its own with `private_postgres`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devtools.embedded_redis import free_port

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The server the tests make their databases on (`tests.support.run` sets the variable for a private one).
POSTGRES_ADMIN_URL = os.environ.get("WARDEN_TEST_POSTGRES_URL", DEFAULT_URL)
ROOT = Path(__file__).resolve().parents[2]
PRIVATE_DIR = ROOT / "var" / "test-pg"


def answers(url: str) -> bool:
    """True when a PostgreSQL server accepts a connection at `url` within three seconds."""
    import asyncio

    import asyncpg

    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(url, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


def _binaries() -> Path | None:
    """Directory holding initdb and pg_ctl: Debian's newest, else whatever PATH has."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _install() -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("tests: installing Debian's postgresql for the PostgreSQL tests", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-qq", "postgresql"]
    if subprocess.run(install, env=env, check=False, **quiet).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=False, **quiet)
        subprocess.run(install, env=env, check=False, **quiet)


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of this test run's own."""

    bindir: Path
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*_as_owner(), *args], check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.datadir}",
                "-c max_connections=300",
                "-c fsync=off",  # a throw-away cluster: durability across power loss is not tested
                "-c full_page_writes=off",
            ]
        )
        log = str(self.datadir.parent / "postgres.log")
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", log, "-o", options, "-w", "start"
        )

    def restart(self) -> subprocess.Popen[bytes]:
        """Begin a fast restart (pg_ctl keeps the options the server was started with); the caller waits
        for the returned pg_ctl."""
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "restart"]
        return subprocess.Popen([*_as_owner(), *argv], stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        subprocess.run(
            [*_as_owner(), str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def environ(self) -> dict[str, str]:
        return {"WARDEN_TEST_POSTGRES_URL": self.url}


def running(datadir: Path) -> bool:
    """Whether a server may be running on the cluster in `datadir`: its postmaster.pid names a process
    that is alive (or cannot be read or looked at: then it is taken to be)."""
    try:
        pid = int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owned_dir(base: Path) -> Path:
    """A fresh directory the cluster's owner can write: `base`, else one in /tmp when it cannot reach it."""
    if base.exists():
        shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    if os.geteuid() != 0:
        return base
    shutil.chown(base, "postgres", "postgres")
    reachable = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(base)], check=False)
    if reachable.returncode == 0:
        return base
    import tempfile

    fallback = Path(tempfile.mkdtemp(prefix="warden-test-pg-"))
    shutil.chown(fallback, "postgres", "postgres")
    return fallback


def make_private(base: Path = PRIVATE_DIR) -> PrivatePostgres:
    """Install (if needed), initialise and start a private cluster under `base`; raises RuntimeError
    naming the step."""
    bindir = _binaries()
    if bindir is None:
        _install()
        bindir = _binaries()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb) and Debian's postgresql could not be installed")
    home = _owned_dir(base)
    server = PrivatePostgres(bindir=bindir, datadir=home / "data", port=free_port())
    subprocess.run(
        [
            *_as_owner(),
            str(bindir / "initdb"),
            "-D",
            str(server.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server.start()
    return server


@contextlib.contextmanager
def private_postgres(base: Path) -> Iterator[PrivatePostgres]:
    """A cluster of the caller's own under `base` (for a test that stops or restarts it), stopped and
    removed afterwards."""
    server = make_private(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.datadir.parent, ignore_errors=True)
