"""LiveKit Cloud's agent deployments in the stand-in (`livekit.CloudAgent`, what `lk agent restart` calls):
RestartAgent, RollbackAgent, ListAgents.

RestartAgent wakes the agent's deployment if it fell asleep (`deployments.py`), and ListAgents lists a
sleepy deployment: "Sleeping" with no replicas while asleep, "Running" with one when awake.

A deployment given a `restart_takes` is listed "Sleeping" with no replicas until that long after its
RestartAgent, "Running" after. That runs on wall time, whatever the stand-in's clock: Warden's escalation
polls ListAgents on wall time, in the tests too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit.protocol import cloud_agent as ca

from devtools.simulator.base import TwirpFailure
from devtools.simulator.deployments import Deployments


@dataclass
class CloudAgents(Deployments):
    cloud_agents: dict[str, str] = field(default_factory=dict)  # agent id -> agent name
    restarts: list[str] = field(default_factory=list)
    on_restart: Callable[[str], None] | None = None
    # agent id -> seconds its deployment takes to come back after RestartAgent: such an agent's
    # deployment is listed (ListAgents), "Sleeping" with no replicas until then, "Running" after.
    restart_takes: dict[str, float] = field(default_factory=dict)
    back_at: dict[str, float] = field(default_factory=dict)  # agent id -> when its deployment came back
    # agent id -> how many ListAgents answers after a RestartAgent list it "Sleeping" whatever the time:
    # a test that must see the deployment down before it is up, however late its first poll comes.
    restart_asleep_polls: dict[str, int] = field(default_factory=dict)
    asleep_left: dict[str, int] = field(default_factory=dict)

    def _RestartAgent(self, req: ca.RestartAgentRequest) -> ca.RestartAgentResponse:
        if req.agent_id not in self.cloud_agents:
            raise TwirpFailure("not_found", "agent not found")
        self.restarts.append(req.agent_id)
        self.redeploy(self.cloud_agents[req.agent_id])  # a sleepy deployment wakes (`deployments.py`)
        if req.agent_id in self.restart_takes:
            self.back_at[req.agent_id] = time.time() + self.restart_takes[req.agent_id]
            self.asleep_left[req.agent_id] = self.restart_asleep_polls.get(req.agent_id, 0)
        if self.on_restart is not None:
            self.on_restart(req.agent_id)
        return ca.RestartAgentResponse(success=True, message="restarting")

    def _RollbackAgent(self, req: ca.RollbackAgentRequest) -> ca.RollbackAgentResponse:
        self.restarts.append(f"rollback:{req.agent_id}")
        return ca.RollbackAgentResponse(success=req.agent_id in self.cloud_agents)

    def _ListAgents(self, req: ca.ListAgentsRequest) -> ca.ListAgentsResponse:
        agents = [
            ca.AgentInfo(agent_id=i, agent_name=n, agent_deployments=self._deployments(i, n))
            for i, n in self.cloud_agents.items()
            if (not req.agent_name or n == req.agent_name) and (not req.agent_id or i == req.agent_id)
        ]
        return ca.ListAgentsResponse(agents=agents)

    def _deployments(self, agent_id: str, agent_name: str) -> list[ca.AgentDeployment]:
        asleep = self.asleep(agent_name)
        if agent_id not in self.restart_takes and asleep is None:
            return []
        up = asleep is not True
        if agent_id in self.restart_takes:
            up = up and time.time() >= self.back_at.get(agent_id, float("inf"))
        if self.asleep_left.get(agent_id, 0) > 0:
            self.asleep_left[agent_id] -= 1
            up = False
        return [
            ca.AgentDeployment(
                region="us-east",
                agent_id=agent_id,
                agent_name=agent_name,
                status="Running" if up else "Sleeping",
                replicas=1 if up else 0,
                min_replicas=0,
                max_replicas=2,
            )
        ]
