"""`make run`: migrations, then web and worker, on embedded defaults; Ctrl-C stops everything.

- `.env` is read if present (by the settings, and here to see what is set).
- No `REDIS_URL`: a private redis-server is started on loopback (see `embedded_redis`).
- No `DATABASE_URL`: the settings' default SQLite file under ./var/.
- No LiveKit key at all: the keys `livekit-server --dev` uses (devkey / secret), said loudly, so a
  local LiveKit started with `--dev` can post webhooks here straight away.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from dotenv import dotenv_values

from service.embedded_redis import EmbeddedRedis
from workers.settings import load_settings_or_exit

DEV_KEYS = {
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "secret",
    "LIVEKIT_URL": "http://localhost:7880",
}
STOP_GRACE_SECONDS = 10


def say(message: str) -> None:
    print(f"warden: {message}", flush=True)


def _configured(name: str, dotenv: dict[str, str | None]) -> bool:
    return bool(os.environ.get(name) or dotenv.get(name))


def main() -> None:
    dotenv = dotenv_values(".env") if Path(".env").exists() else {}
    env = dict(os.environ)
    env.setdefault("WARDEN_HOST", "127.0.0.1")
    if not any(_configured(n, dotenv) for n in ("LIVEKIT_API_KEY", "LIVEKIT_KEYS")):
        env.update({k: v for k, v in DEV_KEYS.items() if not _configured(k, dotenv)})
        say("no LiveKit key configured; using livekit-server --dev's key 'devkey' (not for production)")
    redis_server = None
    if not _configured("REDIS_URL", dotenv):
        redis_server = EmbeddedRedis(Path("var") / "redis")
        env["REDIS_URL"] = redis_server.start()
        say(f"REDIS_URL unset; started an embedded redis-server at {env['REDIS_URL']}")
    children: list[subprocess.Popen[bytes]] = []
    try:
        os.environ.update(env)
        settings = load_settings_or_exit()
        subprocess.run([sys.executable, "-m", "workers.migrate"], env=env, check=True)
        children.append(subprocess.Popen([sys.executable, "-m", "workers"], env=env))
        children.append(subprocess.Popen([sys.executable, "-m", "service"], env=env))
        say(f"web on http://{settings.warden_host}:{settings.port} (webhook: POST /webhook); Ctrl-C stops")
        _wait(children)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"warden: migrations failed (exit {exc.returncode})")
    finally:
        _stop(children)
        if redis_server:
            redis_server.stop()


class _Stop(Exception):
    """Raised from the signal handler to leave the wait."""


def _wait(children: list[subprocess.Popen[bytes]]) -> None:
    """Return when any child process exits, or on SIGINT/SIGTERM."""

    def _on_signal(signum: int, _frame: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        if all(c.poll() is None for c in children):
            os.waitpid(-1, 0)
    except (_Stop, ChildProcessError):
        pass


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    say("stopped")


if __name__ == "__main__":
    main()
