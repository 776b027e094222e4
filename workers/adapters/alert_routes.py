"""Alert routes beside Slack: PagerDuty (Events API v2), Opsgenie (Alert API) and a generic incident
webhook signed like the deploy hook. Each sends one `IncidentEvent` and says how the receiver answered;
5xx, 429 and transport errors are retryable, other 4xx final (`workers.adapters.hooks.post`).

Routing keys, API keys and webhook URLs are secrets: they go in the request only, never in an outcome,
an error or a log line.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from workers.adapters.hooks import SIGNATURE_HEADER, post, signature
from workers.core.outgoing import IncidentEvent

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
OPSGENIE_URL = "https://api.opsgenie.com"
OPSGENIE_MESSAGE_CHARS = 130  # the Alert API's limit on `message`
EVENT_HEADER = "X-Warden-Event"


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _details(event: IncidentEvent) -> dict[str, Any]:
    """What every on-call tool shows beside the summary."""
    return {
        "incident_id": event.incident_id,
        "agent": event.agent_name or "(any agent)",
        "rooms_affected": list(event.rooms),
        "warden_is_doing": event.doing,
        "kind": event.kind,
        "worker_ids": list(event.worker_ids),
    }


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


_PAGERDUTY_ACTIONS = {"acknowledged": "acknowledge", "resolved": "resolve"}


class PagerDuty:
    """Events API v2: `trigger` when the incident opens, `acknowledge` when an operator acknowledges it
    in Warden, `resolve` when it resolves, all with the incident id as `dedup_key` (so PagerDuty keeps one
    alert per incident)."""

    name = "PagerDuty"
    steps = frozenset({"opened", "acknowledged", "resolved"})

    def __init__(self, client: httpx.AsyncClient, routing_key: str, url: str = PAGERDUTY_URL) -> None:
        self._client, self._key, self._url = client, routing_key, url

    def body(self, event: IncidentEvent) -> dict[str, Any]:
        if event.step in _PAGERDUTY_ACTIONS:
            action = _PAGERDUTY_ACTIONS[event.step]
            return {"routing_key": self._key, "event_action": action, "dedup_key": event.incident_id}
        return {
            "routing_key": self._key,
            "event_action": "trigger",
            "dedup_key": event.incident_id,
            "payload": {
                "summary": event.summary[:1024],
                "source": f"warden: agent {event.agent_name or '(any agent)'}",
                "severity": "critical",
                "timestamp": _iso(event.at),
                "component": event.agent_name or "(any agent)",
                "group": "livekit agents",
                "class": "agent not joining rooms",
                "custom_details": _details(event),
            },
        }

    async def send(self, event: IncidentEvent) -> str:
        status = await post(self._client, self._url, _json(self.body(event)), {}, "PagerDuty")
        return f"PagerDuty answered HTTP {status}"


class Opsgenie:
    """Alert API: an alert created when the incident opens with the incident id as `alias`, acknowledged
    by that alias when an operator acknowledges it in Warden (their name as `user`), closed by that
    alias when it resolves."""

    name = "Opsgenie"
    steps = frozenset({"opened", "acknowledged", "resolved"})

    def __init__(self, client: httpx.AsyncClient, api_key: str, url: str = OPSGENIE_URL) -> None:
        self._client, self._key, self._base = client, api_key, url.rstrip("/")

    def request(self, event: IncidentEvent) -> tuple[str, dict[str, Any]]:
        """The path (under the API's base URL) and the JSON body for `event`."""
        if event.step == "resolved":
            alias = quote(event.incident_id, safe="")
            path = f"/v2/alerts/{alias}/close?identifierType=alias"
            return path, {"source": "Warden", "note": event.summary}
        if event.step == "acknowledged":
            alias = quote(event.incident_id, safe="")
            path = f"/v2/alerts/{alias}/acknowledge?identifierType=alias"
            return path, {"source": "Warden", "user": event.by or "Warden", "note": event.summary}
        message = event.summary
        if len(message) > OPSGENIE_MESSAGE_CHARS:
            message = message[: OPSGENIE_MESSAGE_CHARS - 1] + "…"
        return "/v2/alerts", {
            "message": message,
            "alias": event.incident_id,
            "description": event.summary,
            "details": {k: ", ".join(v) if isinstance(v, list) else v for k, v in _details(event).items()},
            "entity": event.agent_name or "(any agent)",
            "source": "Warden",
            "tags": ["warden", "livekit"],
            "priority": "P1",
        }

    async def send(self, event: IncidentEvent) -> str:
        path, body = self.request(event)
        headers = {"Authorization": f"GenieKey {self._key}"}
        status = await post(self._client, self._base + path, _json(body), headers, "Opsgenie")
        return f"Opsgenie answered HTTP {status}"


class IncidentWebhook:
    """Every incident event as JSON to any other router, signed with HMAC-SHA256 of its secret in
    `X-Warden-Signature: sha256=<hex>` (as the deploy hook is); the event's name in `X-Warden-Event`."""

    name = "incident webhook"
    steps = frozenset({"opened", "restarted", "followup", "restart-failed", "acknowledged", "resolved"})

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self._client, self._url, self._secret = client, url, secret

    @staticmethod
    def body(event: IncidentEvent) -> dict[str, Any]:
        return {
            "event": event.step,
            "incident_id": event.incident_id,
            "agent_name": event.agent_name,
            "at": _iso(event.at),
            "summary": event.summary,
            "rooms": list(event.rooms),
            "warden_is_doing": event.doing,
            "kind": event.kind,
            "worker_ids": list(event.worker_ids),
            **({"by": event.by} if event.by else {}),
        }

    async def send(self, event: IncidentEvent) -> str:
        body = _json(self.body(event))
        headers = {"X-Warden-Incident": event.incident_id, EVENT_HEADER: event.step}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        status = await post(self._client, self._url, body, headers, "incident webhook")
        return f"incident webhook answered HTTP {status}"
