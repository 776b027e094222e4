"""`make run` in a terminal (tmux), as a newcomer sees it: one status panel, no warnings, the processes'
logs under var/log/; Ctrl-C stops everything and frees the ports."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import psutil

from devtools.embedded_redis import free_port
from tests.support.processes import ROOT
from tests.support.terminal import Terminal
from tests.support.waiting import read_until

WARNINGS = re.compile(r"warning|invalid -W", re.IGNORECASE)


def port_is_free(port: int) -> bool:
    """True when a server could listen there again (as servers do, past closed connections' TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_make_run_in_a_terminal_shows_one_calm_panel_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIVEKIT_", "WARDEN_", "REDIS_", "DATABASE_", "PYTHON", "TMUX"))
    }
    port, worker_port = free_port(), free_port()
    env.update(
        PORT=str(port),
        WARDEN_WORKER_METRICS_PORT=str(worker_port),
        WARDEN_DEMO_SEED="5",
        WARDEN_DEMO_FAILURES="never-joins:0.5",
        PYTHONPATH=str(ROOT),  # this checkout's code, whatever is installed
        TERM="xterm-256color",
    )
    url = f"http://127.0.0.1:{port}"
    terminal = Terminal(tmp_path, env)
    try:
        terminal.type(f"{sys.executable} -m devtools.run")
        screen = read_until(
            terminal.screen,
            lambda s: re.search(r"Rooms +(waiting|agent \w+|idle|closed) \d", s) is not None,
            "the panel showing rooms by state",
            timeout=60,
            describe=str,
        )
        assert "Warden · make run · running" in screen
        assert re.search(rf"Dashboard +{url}/ ", screen), screen
        assert re.search(rf"Webhook +POST {url}/webhook ", screen), screen
        assert f"worker http://127.0.0.1:{worker_port}/metrics" in screen
        assert re.search(r"Recoveries +(re-dispatched \d+|worker not answering yet)", screen), screen
        assert re.search(r"Incidents +\d+ open", screen), screen
        assert "var/log/ (release.log, worker.log, web.log, simulator.log, redis.log)" in screen
        assert "demo mode" in screen
        assert screen.count("╭─ Warden") == 1, screen  # one panel, redrawn in place
        assert not WARNINGS.search(screen), screen
        read_until(  # tokens signed with the dev key on both sides: webhooks in, a re-dispatch out
            terminal.screen,
            lambda s: re.search(r"re-dispatched [1-9]", s) is not None,
            "the panel counting a recovery",
            timeout=60,
            describe=str,
        )
        redis_port = int(re.findall(r"redis://127\.0\.0\.1:(\d+)/0", screen)[0])
        runner = psutil.Process(terminal.shell_pid()).children()[0]
        processes = [runner, *runner.children(recursive=True)]
        assert len(processes) == 5  # make run, redis-server, worker, web, simulator

        terminal.press("C-c")
        screen = read_until(
            terminal.screen, lambda s: "warden: stopped" in s, "make run to stop", describe=str
        )
        _gone, alive = psutil.wait_procs(processes, timeout=15)
        assert alive == []
        assert not WARNINGS.search(screen), screen
        assert "Traceback" not in screen, screen
        for busy in (port, worker_port, redis_port):
            assert port_is_free(busy), busy
        logs = tmp_path / "var" / "log"
        for name in ("release", "worker", "web", "simulator"):  # redis-server's own WARNINGs are its own
            text = (logs / f"{name}.log").read_text()
            assert "Invalid -W" not in text and "InsecureKeyLengthWarning" not in text, (name, text)
        assert "Running upgrade" in (logs / "release.log").read_text()
        assert "apply_webhook" in (logs / "worker.log").read_text()
        assert "POST /webhook" in (logs / "web.log").read_text()
        assert "stand-in LiveKit" in (logs / "simulator.log").read_text()
        assert "Ready to accept connections" in (logs / "redis.log").read_text()
    finally:
        terminal.close()
