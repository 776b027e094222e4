"""Agent deployments that fall asleep in the stand-in LiveKit: the LiveKit Cloud deployment that went dormant
after a quiet night and did not wake for the first session of the morning until `lk agent deploy`.

`fake.deployment("notetaker", sleep_after=600)` gives the agent a deployment that falls asleep once
`sleep_after` seconds (on the stand-in's clock) have passed without a dispatch of that agent answered. From
then on each `CreateDispatch` of it is accepted (listed by `ListDispatch`, with an empty `jobs`) and never
taken: no worker of a scaled-to-zero deployment is registered to take it, and nothing wakes one. That is
LiveKit's "no registered worker" case (`../shared/LIVEKIT.md`), which is what a dormant deployment looks
like from the API; the open-source server never offers a dispatch again, so the dispatches swallowed while
asleep stay unserved after the wake too. It wakes, and starts its quiet spell afresh, when it is restarted:
Cloud `RestartAgent` of the agent id whose name it is (`cloud.py`), a call of Warden's deploy hook to the
stand-in (`POST /deploy-hook`, `{"agent_name": ...}`), or `fake.redeploy(name)`. Dispatches made after the
wake are answered again (and keep it awake). `sleeps=1`: it falls asleep once only (the broken deployment
a redeploy mended), as `make run`'s demo has it.

Its `ListAgents` status while asleep is "Sleeping" with 0 replicas, as `lk agent status` shows a scaled-to-
zero Cloud deployment (docs.livekit.io, `lk agent status` example: "Sleeping", replicas 0 / 0 / 1), and
"Running" with one replica when awake: a dormant deployment that will not wake looks like any idle one.
Only a dispatch tells the two apart — what canaries are for.

The quiet spell counts dispatches, not sessions: an agent in a long meeting does not keep it awake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from devtools.simulator.base import Base


@dataclass
class Deployment:
    """An agent's deployment: awake until `sleep_after` seconds pass with no dispatch answered."""

    agent_name: str
    sleep_after: float  # seconds of quiet after which it falls asleep (math.inf: never)
    active_at: float  # the last dispatch it answered, or its last (re)start
    asleep_since: float | None = None  # when it fell asleep (None: awake)
    sleeps: int | None = None  # how many more times it may fall asleep (None: after every quiet spell)
    swallowed: list[str] = field(default_factory=list)  # ids of the dispatches it took asleep
    wakes: list[float] = field(default_factory=list)  # when it was restarted or redeployed

    def asleep(self, now: float) -> bool:
        """Is it asleep at `now` (the quiet spell is over)? Falling asleep is for good, until a wake."""
        if self.asleep_since is None and now - self.active_at >= self.sleep_after and self.sleeps != 0:
            self.asleep_since = self.active_at + self.sleep_after
            self.sleeps = None if self.sleeps is None else self.sleeps - 1
        return self.asleep_since is not None

    def answers(self, now: float) -> bool:
        """A dispatch of its agent comes at `now`: is it answered (and the quiet spell starts again)?"""
        if self.asleep(now):
            return False
        self.active_at = now
        return True

    def wake(self, now: float) -> None:
        self.asleep_since, self.active_at = None, now
        self.wakes.append(now)


@dataclass
class Deployments(Base):
    deployments: dict[str, Deployment] = field(default_factory=dict)  # agent name -> its sleepy deployment
    swallowed_ids: set[str] = field(default_factory=set)  # dispatches a sleeping deployment swallowed

    def deployment(
        self, agent_name: str, *, sleep_after: float = math.inf, sleeps: int | None = None
    ) -> Deployment:
        """From now on `agent_name`'s deployment falls asleep after `sleep_after` seconds without a
        dispatch (awake now, its quiet spell starting now); `sleeps`: only that many times (None: after
        every quiet spell). Returns it."""
        made = Deployment(agent_name, sleep_after, self._now(), sleeps=sleeps)
        self.deployments[agent_name] = made
        return made

    def redeploy(self, agent_name: str) -> bool:
        """The deployment is restarted (`RestartAgent`, a deploy hook, `lk agent deploy`): awake, its
        quiet spell afresh. Was there a sleepy deployment of that name?"""
        found = self.deployments.get(agent_name)
        if found is not None:
            found.wake(self._now())
        return found is not None

    def swallowed(self, dispatch_id: str) -> bool:
        """Was the dispatch taken by a sleeping deployment (no agent will come for it)?"""
        return dispatch_id in self.swallowed_ids

    def asleep(self, agent_name: str) -> bool | None:
        """Is the agent's deployment asleep now? None: it has no sleepy deployment."""
        found = self.deployments.get(agent_name)
        return None if found is None else found.asleep(self._now())

    def _answers(self, dispatch_id: str, agent_name: str) -> bool:
        """A dispatch of `agent_name` is made: does its deployment answer it? (Once per dispatch.)"""
        found = self.deployments.get(agent_name)
        if found is None or found.answers(self._now()):
            return True
        found.swallowed.append(dispatch_id)
        self.swallowed_ids.add(dispatch_id)
        return False
