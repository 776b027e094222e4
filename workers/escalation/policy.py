"""What escalation is given: its policy as plain values, and the two things it calls out to (a
restarter for the deploy hook, an alerter), as protocols the adapters in `workers.adapters.hooks` meet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Restarter(Protocol):
    name: str

    async def restart(self, agent_name: str, *, incident_id: str, reason: str, rooms: list[str]) -> str:
        """Restart the agent's workers; return what happened, or raise `UpstreamError`."""
        ...


class Alerter(Protocol):
    async def send(self, text: str) -> str:
        """Post `text`; return what the receiver answered, or raise `UpstreamError`."""
        ...


@dataclass(frozen=True)
class EscalationPolicy:
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
