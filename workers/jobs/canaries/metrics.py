"""The canaries' metrics, served with the worker's (`workers.jobs.runtime.metrics`). Each worker counts
the runs it made; the last success is a timestamp, so Prometheus takes the newest across workers
(`max by (agent)`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from workers.core.canary import Outcome

CANARY_SECONDS = Histogram(
    "warden_canary_seconds",
    "Canaries: from the agent's dispatch to the agent in the canary room, per agent (runs it came to)",
    ["agent"],
    buckets=(0.5, 1, 2, 3, 5, 10, 15, 20, 30, 60),
)
CANARY_RUNS = Counter(
    "warden_canary_runs_total",
    "Canary runs by agent and outcome (pass, fail, capacity, interrupted)",
    ["agent", "outcome"],
)
CANARY_LAST_SUCCESS = Gauge(
    "warden_canary_last_success_timestamp_seconds",
    "When the agent's last passing canary ended (Unix time); absent before its first pass here",
    ["agent"],
)


def count_run(agent: str, outcome: Outcome, seconds: float | None, at: float) -> None:
    """One finished run in the metrics."""
    CANARY_RUNS.labels(agent=agent, outcome=outcome.value).inc()
    if seconds is not None:
        CANARY_SECONDS.labels(agent=agent).observe(seconds)
    if outcome is Outcome.PASSED:
        CANARY_LAST_SUCCESS.labels(agent=agent).set(at)
