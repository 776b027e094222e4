"""`make run`: migrations, then web and worker, on embedded defaults; Ctrl-C stops everything.

- `.env` is read if present (by the settings, and here to see what is set).
- No `REDIS_URL`: a private redis-server is started on loopback (see `embedded_redis`).
- No `DATABASE_URL`: the settings' default SQLite file under ./var/.
- No LiveKit key at all: demo mode. The simulator (`warden simulate --forever`) plays LiveKit on a
  loopback port with `livekit-server --dev`'s keys (devkey / secret), rooms come and go, agents fail
  and Warden recovers them; open the dashboard URL printed. `WARDEN_DEMO=0` skips the simulator and
  keeps the dev keys, so that a local `livekit-server --dev` can post webhooks here instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from dotenv import dotenv_values

from service.dev.embedded_redis import EmbeddedRedis, free_port
from workers.settings import load_settings_or_exit

DEV_KEYS = {
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "secret",
    "LIVEKIT_URL": "http://localhost:7880",
}
STOP_GRACE_SECONDS = 10
DEMO_AGENT = "demo-agent"
DEMO_FAILURES = "never-joins:0.2,leaves:0.1,stalls:0.1,outage:60+40"
# Short SLAs so that a newcomer sees recoveries in the first minute; an outage is 3 rooms failing.
DEMO_SECOND_AGENT = "notetaker"
DEMO_RULES = Path(__file__).with_name("demo-rules.toml")
DEMO_SETTINGS = {
    "WARDEN_RULES": str(DEMO_RULES),
    "WARDEN_JOIN_SLA_SECONDS": "5",
    "WARDEN_REJOIN_SLA_SECONDS": "5",
    "WARDEN_ACTIVE_SLA_SECONDS": "6",
    "WARDEN_SWEEP_SECONDS": "1",
    "WARDEN_OUTAGE_ROOMS": "4",
    "WARDEN_OUTAGE_WINDOW_SECONDS": "20",
    "WARDEN_RESTART_GRACE_SECONDS": "3",
    "WARDEN_CLOUD_AGENT_ID": "CA_simulated",
    "WARDEN_RECONCILE_SECONDS": "10",
}


def say(message: str) -> None:
    print(f"warden: {message}", flush=True)


def _configured(name: str, dotenv: dict[str, str | None]) -> bool:
    return bool(os.environ.get(name) or dotenv.get(name))


def main() -> None:
    dotenv = dotenv_values(".env") if Path(".env").exists() else {}
    env = dict(os.environ)
    env.setdefault("WARDEN_HOST", "127.0.0.1")
    demo_port = 0
    if not any(_configured(n, dotenv) for n in ("LIVEKIT_API_KEY", "LIVEKIT_KEYS")):
        env.update({k: v for k, v in DEV_KEYS.items() if not _configured(k, dotenv)})
        # PyJWT warns about the 6-byte dev secret on every token; said once above instead.
        env.setdefault("PYTHONWARNINGS", "ignore::jwt.warnings.InsecureKeyLengthWarning")
        if env.get("WARDEN_DEMO", "1") != "0" and not _configured("LIVEKIT_URL", dotenv):
            demo_port = free_port()
            env["LIVEKIT_URL"] = env["LK_AGENTS_URL"] = f"http://127.0.0.1:{demo_port}"
            for name, value in DEMO_SETTINGS.items():
                env.setdefault(name, value)
            say("no LiveKit key configured: demo mode, simulated rooms and agents (WARDEN_DEMO=0: none)")
        else:
            say("no LiveKit key configured; using livekit-server --dev's key 'devkey' (not for production)")
    redis_server = None
    if not _configured("REDIS_URL", dotenv):
        redis_server = EmbeddedRedis(Path("var") / "redis")
        env["REDIS_URL"] = redis_server.start()
        say(f"REDIS_URL unset; started an embedded redis-server at {env['REDIS_URL']}")
    env.setdefault("WARDEN_WORKER_METRICS_PORT", str(free_port()))
    children: list[subprocess.Popen[bytes]] = []
    try:
        os.environ.update(env)
        settings = load_settings_or_exit()
        subprocess.run([sys.executable, "-m", "workers.migrate"], env=env, check=True)
        children.append(subprocess.Popen([sys.executable, "-m", "workers"], env=env))
        children.append(subprocess.Popen([sys.executable, "-m", "service"], env=env))
        url = f"http://{settings.warden_host}:{settings.port}"
        if demo_port:
            children.append(subprocess.Popen(_simulator(url, demo_port, env), env=env))
        worker_metrics = f"http://127.0.0.1:{env['WARDEN_WORKER_METRICS_PORT']}/metrics"
        say(f"dashboard on {url}/ (webhook: POST /webhook; metrics: {url}/metrics, worker {worker_metrics})")
        say("Ctrl-C stops")
        _wait(children)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"warden: migrations failed (exit {exc.returncode})")
    finally:
        _stop(children)
        if redis_server:
            redis_server.stop()


def _simulator(url: str, port: int, env: dict[str, str]) -> list[str]:
    argv = [sys.executable, "-m", "service.cli", "--url", url, "simulate", "--forever", "--port", str(port)]
    argv += ["--failure", env.get("WARDEN_DEMO_FAILURES", DEMO_FAILURES), "--meeting", "20-45"]
    argv += ["--agent-name", env.get("WARDEN_AGENT_NAME") or DEMO_AGENT]
    argv += ["--second-agent", DEMO_SECOND_AGENT, "--second", "0.5", "--sip", "0.2"]
    return argv + (["--seed", env["WARDEN_DEMO_SEED"]] if env.get("WARDEN_DEMO_SEED") else [])


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
