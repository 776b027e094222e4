"""`make run`'s job on a fresh directory: embedded Redis, SQLite under ./var, dev keys; Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devtools.embedded_redis import free_port
from tests.support.helpers import fixture, sign
from tests.support.processes import ROOT

DEV_KEY, DEV_SECRET = "devkey", "secret"


@pytest.mark.filterwarnings(
    "ignore::jwt.warnings.InsecureKeyLengthWarning"
)  # livekit-server --dev's short secret
def test_make_run_serves_webhooks_on_embedded_defaults_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIVEKIT_", "WARDEN_", "REDIS_", "DATABASE_"))
    }
    port = free_port()
    env["PORT"] = str(port)
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, whatever is installed
    env["WARDEN_DEMO"] = "0"  # dev keys for a local livekit-server --dev, no simulator
    runner = subprocess.Popen(
        [sys.executable, "-m", "devtools.run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = []
        assert runner.stdout is not None
        for line in runner.stdout:  # wait for the runner to say it is up
            banner.append(line)
            if "Ctrl-C stops" in line:
                break
        assert any("embedded redis-server" in line for line in banner), banner
        url = f"http://127.0.0.1:{port}"
        raw = fixture("participant_joined_standard")
        deadline = time.monotonic() + 30
        while True:  # uvicorn binds a moment after the banner; there is no event to await
            try:
                response = httpx.post(
                    f"{url}/webhook", content=raw, headers={"Authorization": sign(raw, DEV_KEY, DEV_SECRET)}
                )
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
        while (rooms := httpx.get(f"{url}/api/rooms").json()["rooms"]) == [] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [(r["name"], r["state"]) for r in rooms] == [("call-42", "waiting")]
        assert (tmp_path / "var" / "warden.db").exists()
        children = psutil.Process(runner.pid).children(recursive=True)
        assert len(children) == 3  # redis-server, worker, web
    finally:
        runner.send_signal(signal.SIGINT)
        output = runner.communicate(timeout=30)[0]
    assert runner.returncode == 0, output
    assert "warden: stopped" in output
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


def test_make_run_without_credentials_is_a_demo_where_agents_fail_and_are_recovered(tmp_path: Path) -> None:
    """A newcomer's first minute: simulated rooms come, some agents never join, Warden re-dispatches."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIVEKIT_", "WARDEN_", "REDIS_", "DATABASE_"))
    }
    port = free_port()
    env.update(
        PORT=str(port), WARDEN_DEMO_SEED="5", WARDEN_DEMO_FAILURES="never-joins:0.5", PYTHONPATH=str(ROOT)
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "devtools.run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        banner = []
        assert runner.stdout is not None
        for line in runner.stdout:
            banner.append(line)
            if "Ctrl-C stops" in line:
                break
        assert any("demo mode" in line for line in banner), banner
        assert any(f"dashboard on {url}/" in line for line in banner), banner
        deadline = time.monotonic() + 60
        recovered = None
        while recovered is None and time.monotonic() < deadline:  # polled as a person watching would
            time.sleep(0.5)
            try:
                rooms = httpx.get(f"{url}/api/rooms").json()["rooms"]
            except httpx.HTTPError:
                continue
            for room in rooms:
                if room["state"] == "agent_active":
                    timeline = httpx.get(f"{url}/api/rooms/{room['name']}").json()["timeline"]
                    if any(e["type"] == "agent_dispatched" for e in timeline):
                        recovered = room["name"]
        assert recovered, "no simulated room was recovered by a re-dispatch within a minute"
        assert "agent active" in httpx.get(f"{url}/").text
        children = psutil.Process(runner.pid).children(recursive=True)
        assert len(children) == 4  # redis-server, worker, web, simulator
    finally:
        runner.send_signal(signal.SIGINT)
        output = runner.communicate(timeout=30)[0]
    assert runner.returncode == 0, output
    said = [*banner, *output.splitlines(keepends=True)]  # away from a terminal: a few calm lines, no more
    assert all(line.startswith("warden: ") for line in said), said
    assert len(said) == 4, said  # demo mode, embedded redis, the URLs, stopped
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
