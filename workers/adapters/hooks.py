"""Warden's own outgoing HTTP (httpx): the deploy hook that restarts self-hosted workers, and alerts.

The deploy hook gets a JSON body signed with HMAC-SHA256 of `WARDEN_DEPLOY_HOOK_SECRET`, in
`X-Warden-Signature: sha256=<hex>` (the body's exact bytes, as GitHub signs its webhooks). Alerts are
Slack-compatible incoming-webhook JSON (`{"text": …}`: Slack, Mattermost, Discord's /slack endpoint).
Both URLs are secrets: they are never logged. 5xx and transport errors are retryable, 4xx final.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from workers.core.errors import UpstreamError

SIGNATURE_HEADER = "X-Warden-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], what: str) -> int:
    """POST JSON `body`; the status, or `UpstreamError` naming `what` (never the URL nor the headers)."""
    try:
        response = await client.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}
        )
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{what} unreachable: {type(exc).__name__}", retryable=True) from None
    if response.status_code >= 400:
        retryable = response.status_code >= 500 or response.status_code == 429
        raise UpstreamError(f"{what} answered HTTP {response.status_code}", retryable=retryable)
    return response.status_code


class DeployHook:
    """POSTs the outage to a URL that can restart workers (a PaaS deploy hook, a Kubernetes job, …)."""

    name = "deploy hook"

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self._client, self._url, self._secret = client, url, secret

    async def restart(
        self,
        agent_name: str,
        *,
        incident_id: str,
        reason: str,
        rooms: list[str],
        worker_ids: list[str] | None = None,
    ) -> str:
        """POST the restart; `worker_ids`: the workers that took jobs and served none (restart them
        alone, if you can)."""
        body = json.dumps(
            {
                "agent_name": agent_name,
                "reason": reason,
                "rooms": rooms,
                "incident_id": incident_id,
                "worker_ids": worker_ids or [],
            },
            separators=(",", ":"),
        ).encode()
        headers = {"X-Warden-Incident": incident_id}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        status = await post(self._client, self._url, body, headers, "deploy hook")
        return f"deploy hook answered HTTP {status}"


def slack_escaped(text: str) -> str:
    """`text` as Slack shows it literally: `&`, `<` and `>` escaped, so that a value in an alert (an
    agent's name) can never mention `<!channel>` or make a link (Slack's "escaping text")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackAlerter:
    """Posts a line of text to a Slack-compatible incoming webhook (Slack's markup escaped)."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client, self._url = client, url

    async def send(self, text: str) -> str:
        body = json.dumps({"text": slack_escaped(text)}).encode()
        status = await post(self._client, self._url, body, {}, "alert webhook")
        return f"alert webhook answered HTTP {status}"
