"""LiveKit Cloud agents (what `lk agent restart|rollback` call): Twirp service `livekit.CloudAgent`.

livekit-api has no wrapper for it, so this speaks through the SDK's own `TwirpClient` with the same
request shape: protobuf bodies, `Authorization: Bearer <jwt>` with an agent-admin grant (signed once and
reused, `workers.adapters.tokens`). The agent id is `WARDEN_CLOUD_AGENT_ID`, or found by agent name
with `ListAgents`, which also tells whether the agent's deployment runs (`running`).
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from google.protobuf.message import Message
from livekit.api.twirp_client import TwirpClient
from livekit.protocol import cloud_agent as ca

from workers.adapters.livekit import ErrorCallback, call
from workers.adapters.tokens import Tokens
from workers.core.errors import UpstreamError

SERVICE = "CloudAgent"


def agents_url(livekit_url: str) -> str:
    """`LK_AGENTS_URL`'s default, as the `lk` CLI derives it: the first host label becomes `agents`
    (`wss://proj-x.livekit.cloud` → `https://agents.livekit.cloud`)."""
    parts = urlsplit(livekit_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    labels = (parts.hostname or "").split(".")
    host = ".".join(["agents", *labels[1:]]) if len(labels) > 1 else (parts.hostname or "")
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((scheme, netloc, "", "", ""))


class Cloud(Protocol):
    """What escalation asks of LiveKit Cloud's agents (`CloudAgents`). `agent_id` is the deployment's
    id (empty: found by agent name); a rule naming another sets it on a copy."""

    name: str
    agent_id: str

    async def restart(self, agent_name: str, **_incident: object) -> str:
        """Restart the agent's deployment; what LiveKit said, or raise `UpstreamError`."""
        ...

    async def rollback(self, agent_name: str) -> str:
        """Roll the agent's deployment back to its previous version, or raise `UpstreamError`."""
        ...

    async def running(self, agent_name: str) -> bool | None:
        """Does its deployment report running replicas? None when LiveKit lists none for it."""
        ...


class CloudAgents:
    """Restart (or roll back) a LiveKit Cloud agent deployment."""

    name = "LiveKit Cloud agent restart"

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        agent_id: str = "",
        timeout: float = 3.0,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self._client = TwirpClient(self._session, url, "livekit", failover=False)
        self.tokens = Tokens(api_key, api_secret)
        self._timeout = timeout
        self.agent_id = agent_id
        self._on_error = on_error

    async def aclose(self) -> None:
        await self._session.close()

    async def _request(self, method: str, request: Message, reply: type[Message]) -> Message:
        sent = self._client.request(SERVICE, method, request, self.tokens.agent_admin(), reply)
        return await call(sent, self._timeout, on_error=self._on_error)

    async def _agent_id(self, agent_name: str) -> str:
        if self.agent_id:
            return self.agent_id
        listed = await self._request(
            "ListAgents", ca.ListAgentsRequest(agent_name=agent_name), ca.ListAgentsResponse
        )
        assert isinstance(listed, ca.ListAgentsResponse)
        for agent in listed.agents:
            if agent.agent_name == agent_name:
                return str(agent.agent_id)
        raise UpstreamError(f"no LiveKit Cloud agent named {agent_name!r}", retryable=False, code="not_found")

    async def running(self, agent_name: str) -> bool | None:
        """Does the agent's deployment report running replicas (`ListAgents`: a deployment whose status
        is "Running" with one replica or more)? None when LiveKit lists no deployment for it."""
        request = ca.ListAgentsRequest(agent_name=agent_name, agent_id=self.agent_id)
        listed = await self._request("ListAgents", request, ca.ListAgentsResponse)
        assert isinstance(listed, ca.ListAgentsResponse)
        deployments = [
            d
            for agent in listed.agents
            if agent.agent_name == agent_name or (self.agent_id and agent.agent_id == self.agent_id)
            for d in agent.agent_deployments
        ]
        if not deployments:
            return None
        return any(d.replicas > 0 and d.status.lower() == "running" for d in deployments)

    async def restart(self, agent_name: str, **_incident: object) -> str:
        """RestartAgent (no rebuild); raise `UpstreamError` unless LiveKit says it succeeded."""
        agent_id = await self._agent_id(agent_name)
        reply = await self._request(
            "RestartAgent", ca.RestartAgentRequest(agent_id=agent_id), ca.RestartAgentResponse
        )
        assert isinstance(reply, ca.RestartAgentResponse)
        if not reply.success:
            raise UpstreamError(f"RestartAgent {agent_id} refused: {reply.message}", retryable=False)
        return f"restarted {agent_id}" + (f": {reply.message}" if reply.message else "")

    async def rollback(self, agent_name: str) -> str:
        """RollbackAgent to the previous version (the version is left to LiveKit)."""
        agent_id = await self._agent_id(agent_name)
        request = ca.RollbackAgentRequest(agent_id=agent_id, agent_name=agent_name)
        reply = await self._request("RollbackAgent", request, ca.RollbackAgentResponse)
        assert isinstance(reply, ca.RollbackAgentResponse)
        if not reply.success:
            raise UpstreamError(f"RollbackAgent {agent_id} refused: {reply.message}", retryable=False)
        return f"rolled back {agent_id}" + (f": {reply.message}" if reply.message else "")
