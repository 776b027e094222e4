"""`GET /metrics` for Prometheus: webhooks received by type and verdict, and the process's own metrics.

Counts only, no room names or secrets, so it is served without the API's authentication (restrict it
at the network if that matters to you). More of Warden's figures join here with the dashboard issue.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.requests import Request
from starlette.responses import Response

WEBHOOKS = Counter(
    "warden_webhooks_total",
    "LiveKit webhooks received, by event type ('unknown' before verification) and verdict",
    ["event", "verdict"],
)


def count_webhook(event: str, verdict: str) -> None:
    WEBHOOKS.labels(event=event, verdict=verdict).inc()


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
