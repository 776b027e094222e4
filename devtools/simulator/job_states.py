"""LiveKit's job signals in the stand-in LiveKit (issue 26): why a job is in its status (`JobState.reason`,
protocol 1.53, livekit-protocol 1.1.29), as a server newer than v1.13.5 says it. v1.13.5, measured, sets
no reason: these are opt-in, and without them the stand-in answers as before (a dispatch no worker under
`FULL_LOAD` takes stays without a job).

- `fill(name)`: the agent's deployment is full. Each dispatch of it made until `free(name)` gets a job
  refused for want of capacity (JS_PENDING, JSR_NO_CAPACITY, no worker), listed after the job listing
  lag like any job, and nothing retries it: no agent comes for it (`refused(dispatch_id)` says so).
- `retry(name, seconds)`: LiveKit retries the assignment of each new dispatch of the agent for `seconds`
  before a worker accepts it: its job is listed at once as JS_PENDING with JSR_RETRYING, then the worker
  accepts it and its agent comes as any other.
- `cancel_job(dispatch_id)` (`dispatch.py`): the dispatch's job is cancelled (JS_CANCELLED; the dispatch
  stays listed), terminated as `DeleteDispatch` terminates one.

Every job a worker took names it (`worker_id`, "AW_…"), as the server lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devtools.simulator.base import Base


@dataclass
class JobStates(Base):
    full_agents: set[str] = field(default_factory=set)  # agents whose deployment refuses every job
    retry_for: dict[str, float] = field(default_factory=dict)  # agent -> seconds LiveKit retries it
    refused_ids: set[str] = field(default_factory=set)  # dispatches whose job was refused, full
    full_now: Callable[[str], bool] | None = None  # also full while this says so (a simulation's plan)

    def fill(self, agent_name: str) -> None:
        """The agent's deployment is full from now on: its jobs are refused (JSR_NO_CAPACITY)."""
        self.full_agents.add(agent_name)

    def free(self, agent_name: str) -> None:
        """The agent's deployment takes jobs again (dispatches refused before stay refused)."""
        self.full_agents.discard(agent_name)

    def retry(self, agent_name: str, seconds: float) -> None:
        """LiveKit retries the assignment of the agent's next dispatches for `seconds` (0: no longer)."""
        if seconds > 0:
            self.retry_for[agent_name] = seconds
        else:
            self.retry_for.pop(agent_name, None)

    def full(self, agent_name: str) -> bool:
        """Is the agent's deployment full now?"""
        return agent_name in self.full_agents or (self.full_now is not None and self.full_now(agent_name))

    def refused(self, dispatch_id: str) -> bool:
        """Was the dispatch's job refused for want of capacity (no agent will come for it)?"""
        return dispatch_id in self.refused_ids
