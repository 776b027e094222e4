"""`make run`: migrations, then web and worker, on embedded defaults; Ctrl-C stops everything.

- `.env` is read if present (by the settings, and here to see what is set).
- No `REDIS_URL`: a private redis-server is started on loopback (see `embedded_redis`).
- No `DATABASE_URL`: the settings' default SQLite file under ./var/.
- No LiveKit key at all: demo mode. The simulator (`python -m devtools.simulate --forever`) plays LiveKit on a
  loopback port with `livekit-server --dev`'s keys (devkey / secret), rooms come and go, agents fail
  and Warden recovers them; open the dashboard URL shown. `WARDEN_DEMO=0` skips the simulator and
  keeps the dev keys, so that a local `livekit-server --dev` can post webhooks here instead.
- The processes' output goes to var/log/<process>.log (release, web, worker, simulator, redis), each
  started afresh. On a terminal, one status panel (`devtools.panel`) refreshed each second stands in
  for their lines; elsewhere (CI, a pipe) a line with the URLs when up and one when stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx
from dotenv import dotenv_values
from rich.live import Live

from devtools.embedded_redis import EmbeddedRedis, free_port
from devtools.panel import Links, Status, read_status, render
from workers.settings import load_settings_or_exit

DEV_KEYS = {
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "secret",
    "LIVEKIT_URL": "http://localhost:7880",
}
STOP_GRACE_SECONDS = 10
LOG_DIR = Path("var") / "log"
REFRESH_SECONDS = 1.0
DEMO_AGENT = "demo-agent"
# After the outage, a quiet night (no new rooms from 150 s for 100 s) in which the agent's deployment falls
# asleep, once, after 15 s without a dispatch: no person waits, and a canary (every 20 s) finds it asleep.
# Then its workers are full for 30 s (from 280 s): LiveKit refuses its jobs (JSR_NO_CAPACITY), a capacity
# incident with no restart, resolved once the re-dispatches are served.
# In a twentieth of the rooms the agent never comes at all (issue 27): a web room gets the fallback agent
# (`apology`, on other workers), a phone call is transferred to people (demo-rules.toml); every room is told
# on `warden.status`, and rooms waiting through the outage get the fallback agent, removed when theirs comes.
DEMO_FAILURES = (
    "never-joins:0.2,leaves:0.1,stalls:0.1,stuck:0.05,never-comes:0.05,"
    "outage:60+40,quiet:150+100,sleepy:15x1,full:280+30"
)
DEMO_FALLBACK_AGENT = "apology"
# Short SLAs so that a newcomer sees recoveries in the first minute; an outage is 3 rooms failing.
DEMO_SECOND_AGENT = "notetaker"
DEMO_RULES = Path(__file__).with_name("demo-rules.toml")
DEMO_SETTINGS = {
    "WARDEN_RULES": str(DEMO_RULES),
    "WARDEN_JOIN_SLA_SECONDS": "5",
    "WARDEN_REJOIN_SLA_SECONDS": "5",
    "WARDEN_ACTIVE_SLA_SECONDS": "6",
    "WARDEN_STUCK_INITIALIZING_SECONDS": "8",  # the demo's stuck agents, replaced within a meeting
    "WARDEN_LIVENESS_SECONDS": "5",
    "WARDEN_SWEEP_SECONDS": "1",
    "WARDEN_OUTAGE_ROOMS": "4",
    "WARDEN_OUTAGE_WINDOW_SECONDS": "20",
    "WARDEN_RESTART_GRACE_SECONDS": "3",
    "WARDEN_CLOUD_AGENT_ID": "CA_simulated",
    "WARDEN_RECONCILE_SECONDS": "10",
    "WARDEN_CANARY_EVERY": "20s",  # for the demo's agent (WARDEN_CANARY_AGENTS, set in demo mode)
    "WARDEN_RESTART_COOLDOWN_SECONDS": "60",  # the outage's restart does not hold back the night's
    "WARDEN_FALLBACK_AGENT": DEMO_FALLBACK_AGENT,  # protecting the person (issue 27)
    "WARDEN_NOTIFY_ROOM": "true",
}


def say(message: str) -> None:
    print(f"warden: {message}", flush=True)


def _configured(name: str, dotenv: dict[str, str | None]) -> bool:
    return bool(os.environ.get(name) or dotenv.get(name))


class Processes:
    """Warden's child processes, each writing to var/log/<name>.log."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def _log(self, name: str) -> IO[bytes]:
        return open(LOG_DIR / f"{name}.log", "wb")

    def run(self, name: str, argv: Sequence[str]) -> None:
        with self._log(name) as log:
            subprocess.run(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, check=True)

    def start(self, name: str, argv: Sequence[str]) -> None:
        log = self._log(name)
        process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.running[name] = (process, log)

    def exited(self) -> tuple[str, int] | None:
        """The first process that has exited, with its status, if any has."""
        for name, (process, _) in self.running.items():
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop(self) -> None:
        for process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, log in self.running.values():
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def main() -> None:
    dotenv = dotenv_values(".env") if Path(".env").exists() else {}
    env = dict(os.environ)
    env.setdefault("WARDEN_HOST", "127.0.0.1")
    env["PYTHONUNBUFFERED"] = "1"  # the logs in var/log/ as they happen
    notes: list[str] = []
    demo_port = 0
    if not any(_configured(n, dotenv) for n in ("LIVEKIT_API_KEY", "LIVEKIT_KEYS")):
        env.update({k: v for k, v in DEV_KEYS.items() if not _configured(k, dotenv)})
        if env.get("WARDEN_DEMO", "1") != "0" and not _configured("LIVEKIT_URL", dotenv):
            demo_port = free_port()
            env["LIVEKIT_URL"] = env["LK_AGENTS_URL"] = f"http://127.0.0.1:{demo_port}"
            for name, value in DEMO_SETTINGS.items():
                env.setdefault(name, value)
            env.setdefault("WARDEN_CANARY_AGENTS", env.get("WARDEN_AGENT_NAME") or DEMO_AGENT)
            notes.append(
                "no LiveKit key configured: demo mode, simulated rooms and agents (WARDEN_DEMO=0: none)"
            )
        else:
            notes.append(
                "no LiveKit key configured; using livekit-server --dev's key 'devkey' (not for production)"
            )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    on_terminal = sys.stdout.isatty()
    redis_server = None
    processes = Processes(env)
    try:
        if not _configured("REDIS_URL", dotenv):
            redis_server = EmbeddedRedis(Path("var") / "redis", logfile=LOG_DIR / "redis.log")
            env["REDIS_URL"] = redis_server.start()
            notes.append(f"REDIS_URL unset; started an embedded redis-server at {env['REDIS_URL']}")
        env.setdefault("WARDEN_WORKER_METRICS_PORT", str(free_port()))
        os.environ.update(env)
        settings = load_settings_or_exit()
        processes.run("release", [sys.executable, "-m", "workers.migrate"])
        processes.start("worker", [sys.executable, "-m", "workers"])
        processes.start("web", [sys.executable, "-m", "service"])
        url = f"http://{settings.warden_host}:{settings.port}"
        if demo_port:
            processes.start("simulator", _simulator(url, demo_port, env))
        links = Links(
            dashboard=f"{url}/",
            metrics=f"{url}/metrics",
            worker_metrics=f"http://127.0.0.1:{env['WARDEN_WORKER_METRICS_PORT']}/metrics",
            logs=f"{LOG_DIR}/ ({', '.join(f'{name}.log' for name in ['release', *processes.running])}"
            + (", redis.log)" if redis_server else ")"),
            notes=tuple(notes),
        )
        exited = (
            _watch_with_panel(processes, links, settings.port, settings.admin_token)
            if on_terminal
            else _watch_plain(processes, links)
        )
    except subprocess.CalledProcessError as exc:
        sys.exit(f"warden: migrations failed (exit {exc.returncode}); see {LOG_DIR / 'release.log'}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while stopping changes nothing
        processes.stop()
        if redis_server:
            redis_server.stop()
        say("stopped")
    if exited:
        name, code = exited
        sys.exit(
            f"warden: the {name} process exited (status {code}), so everything stopped; "
            f"see {LOG_DIR}/{name}.log"
        )


def _simulator(url: str, port: int, env: dict[str, str]) -> list[str]:
    argv = [sys.executable, "-m", "devtools.simulate", "--url", url, "--forever", "--port", str(port)]
    argv += ["--failure", env.get("WARDEN_DEMO_FAILURES", DEMO_FAILURES), "--meeting", "20-45"]
    argv += ["--agent-name", env.get("WARDEN_AGENT_NAME") or DEMO_AGENT]
    argv += ["--second-agent", DEMO_SECOND_AGENT, "--second", "0.5", "--sip", "0.2"]
    argv += ["--fallback-agent", env.get("WARDEN_FALLBACK_AGENT") or DEMO_FALLBACK_AGENT]
    return argv + (["--seed", env["WARDEN_DEMO_SEED"]] if env.get("WARDEN_DEMO_SEED") else [])


class _Stop(Exception):
    """Raised from the signal handler to leave the wait."""


def _on_signal(signum: int, _frame: object) -> None:
    raise _Stop


def _watch_plain(processes: Processes, links: Links) -> tuple[str, int] | None:
    """Say where things are, then wait for SIGINT/SIGTERM or a process exiting (returned)."""
    for note in links.notes:
        say(note)
    say(
        f"dashboard on {links.dashboard} (webhook: POST {links.webhook}; metrics: {links.metrics}, "
        f"worker {links.worker_metrics}); logs in {LOG_DIR}/; Ctrl-C stops"
    )
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        while (exited := processes.exited()) is None:
            time.sleep(REFRESH_SECONDS)
        return exited
    except _Stop:
        return None


def _watch_with_panel(
    processes: Processes, links: Links, port: int, admin_token: str
) -> tuple[str, int] | None:
    """The status panel, refreshed each second from both processes' metrics over loopback, until
    SIGINT/SIGTERM or a process exits (returned). `/metrics` needs no credentials today; the dashboard's
    are sent all the same (to Warden's own process, on loopback) should it ever ask for them."""
    loopback = f"http://127.0.0.1:{port}/metrics"
    status: Status | None = None
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    auth = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    with (
        httpx.Client(headers=auth) as client,
        Live(render(None, links, "starting"), auto_refresh=False) as live,
    ):
        try:
            while (exited := processes.exited()) is None:
                status = read_status(client, loopback, links.worker_metrics)
                live.update(render(status, links, "running"), refresh=True)
                time.sleep(REFRESH_SECONDS)
            live.update(render(status, links, f"the {exited[0]} process exited"), refresh=True)
            return exited
        except _Stop:
            live.update(render(status, links, "stopping"), refresh=True)
            return None


if __name__ == "__main__":
    main()
