"""Each process's metrics are its own: the web's `GET /metrics` has none of the worker's series (they
would always read zero there), and the worker's metrics still have them.

Each side runs in a fresh interpreter that imports what its Procfile process imports: in this test
process both are loaded, and Prometheus' registry is per process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from devtools.embedded_redis import free_port
from tests.support.processes import ROOT
from tests.support.settings import KEY, SECRET, make_settings
from workers.__main__ import serve_metrics
from workers.jobs.runtime import metrics as worker_metrics

WEB = """
import sys
from starlette.testclient import TestClient
import service.__main__
from service.app import create_app
with TestClient(create_app()) as client:
    sys.stdout.write(client.get("/metrics").text)
"""
WORKER = """
import sys
from prometheus_client import generate_latest
import workers.__main__
sys.stdout.write(generate_latest().decode())  # what the worker serves on WARDEN_WORKER_METRICS_PORT
"""


def _families(script: str, redis_url: str, tmp_path: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "WARDEN_"))}
    env.update(
        {
            "LIVEKIT_API_KEY": KEY,
            "LIVEKIT_API_SECRET": SECRET,
            "LIVEKIT_URL": "http://127.0.0.1:7880",
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "PYTHONPATH": str(ROOT),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return {family.name for family in text_string_to_metric_families(done.stdout)}


def _worker_series() -> set[str]:
    """Every series defined in `workers.jobs.runtime.metrics`."""
    described: list[Metric] = [
        metric
        for value in vars(worker_metrics).values()
        if isinstance(value, MetricWrapperBase)
        for metric in value.describe()
    ]
    return {metric.name for metric in described}


def test_web_metrics_have_no_worker_series_and_the_worker_keeps_them(redis_url: str, tmp_path: Path) -> None:
    worker_series = _worker_series()
    assert {"warden_jobs", "warden_time_to_agent_seconds"} <= worker_series  # counters drop "_total"
    web = _families(WEB, redis_url, tmp_path)
    assert "warden_webhooks" in web and "warden_queue_jobs" in web
    assert not web & worker_series, sorted(web & worker_series)
    assert worker_series <= _families(WORKER, redis_url, tmp_path)


def test_worker_metrics_listen_on_warden_host_only() -> None:
    """`WARDEN_HOST` keeps the worker's metrics port where it says, as it keeps the web's (it was bound
    to 0.0.0.0 whatever `WARDEN_HOST` said). 127.0.0.2 is loopback too on Linux, so that 127.0.0.1 can
    show what is not listened on."""
    port = free_port()
    server = serve_metrics(make_settings(warden_host="127.0.0.2", warden_worker_metrics_port=port))
    assert server is not None
    try:
        assert httpx.get(f"http://127.0.0.2:{port}/metrics").status_code == 200
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        server.shutdown()
        server.server_close()
