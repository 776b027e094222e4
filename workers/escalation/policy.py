"""What the escalation package is given: the outage policy as plain values, the two things it calls
out to (a restarter for the deploy hook, an alerter), as protocols the adapters in
`workers.adapters.hooks` meet, and the name of a deployment, whose restart its agents share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol


class Restarter(Protocol):
    name: str

    async def restart(
        self,
        agent_name: str,
        *,
        incident_id: str,
        reason: str,
        rooms: list[str],
        worker_ids: list[str] | None = None,
    ) -> str:
        """Restart the agent's workers (`worker_ids`: those that took jobs and served none); return
        what happened, or raise `UpstreamError`."""
        ...


class Alerter(Protocol):
    async def send(self, text: str) -> str:
        """Post `text`; return what the receiver answered, or raise `UpstreamError`."""
        ...


@dataclass(frozen=True)
class OutagePolicy:
    """When rooms' troubles are an outage of their agent, and how its incident's calls are made."""

    agent_name: str
    outage_rooms: int = 3
    outage_window: float = 60.0
    cooldown: float = 300.0
    restart_grace: float = 20.0
    rollback: bool = False
    attempts: int = 3
    backoff: float = 1.0
    lease: float = 60.0  # a claimed restart or rollback with no outcome after this long is taken again
    retry_for: float = 600.0  # alerts and deploy hooks are given up this long after they were decided
    observe: bool = False  # observe mode (`workers.core.observing`): decided and recorded, not carried out
    observe_alerts: bool = False  # and yet alerts go out, marked as from observe mode


def deployment_key(agent_name: str, *, cloud: bool, cloud_agent_id: str, hook: bool, hook_url: str) -> str:
    """The name of what a restart of `agent_name` restarts: its LiveKit Cloud agent (by id; by the agent's
    name when Warden finds the id by name), its deploy hook (by URL; by the agent's name for a hook
    whose URL is not Warden's to know), or both; "" for nothing. A hook's URL is a secret: only its hash
    is kept, and it is never logged."""
    parts = []
    if cloud:
        parts.append(f"cloud:{cloud_agent_id}" if cloud_agent_id else f"cloud-agent:{agent_name}")
    if hook:
        parts.append(
            "hook:" + (hashlib.sha256(hook_url.encode()).hexdigest()[:32] if hook_url else agent_name)
        )
    return "+".join(parts)[:128]
