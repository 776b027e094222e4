"""Every metric name the Prometheus rules and the Grafana dashboard use is one Warden's running
processes really expose: web and worker started from the Procfile, both `/metrics` scraped.

Names only: the label sets (e.g. `agent`) are not checked here."""

from __future__ import annotations

from pathlib import Path

import httpx

from devtools.embedded_redis import free_port
from tests.support.processes import run_warden
from tests.support.promql import (
    SYNTHETIC,
    dashboard_expressions,
    exposed_names,
    metric_names,
    rule_expressions,
)
from tests.support.waiting import read_until


def scrape(url: str) -> str:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


def test_the_rules_and_the_dashboard_use_only_metrics_the_processes_expose(
    tmp_path: Path, redis_url: str
) -> None:
    metrics_port = free_port()
    with run_warden(
        tmp_path,
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'warden.db'}",  # the names do not depend on the database
        WARDEN_WORKER_METRICS_PORT=str(metrics_port),
    ) as warden:
        web = scrape(f"{warden.url}/metrics")
        worker = read_until(
            lambda: scrape(f"http://127.0.0.1:{metrics_port}/metrics"),
            lambda text: "warden_jobs_total" in text,
            "the worker's metrics endpoint",
        )
    exposed = {"web": exposed_names(web), "worker": exposed_names(worker)}
    assert "warden_queue_lag_seconds" in exposed["web"] and "warden_jobs_total" in exposed["worker"]
    every = exposed["web"] | exposed["worker"] | SYNTHETIC
    used = {
        **{f"rule {name}": expr for name, expr in rule_expressions().items()},
        **{f"dashboard {name}": expr for name, expr in dashboard_expressions().items()},
    }
    names = {where: metric_names(expr) for where, expr in used.items()}
    unknown = {where: sorted(found - every) for where, found in names.items() if found - every}
    assert not unknown, f"metric names nothing exposes: {unknown}"
    assert all(names.values()), [where for where, found in names.items() if not found]
    seen = set().union(*names.values())
    # The operator's figures from both processes are there (guards against an empty reading).
    assert {
        "warden_webhooks_total",
        "warden_sla_breaches_total",
        "warden_time_to_agent_seconds_bucket",
    } <= seen
