"""Set-ups of the stand-in LiveKit that reproduce what was seen against LiveKit, for tests.

`cold_start`: the slow agent Warden doubled. Its worker accepts a job in 0.2 s, the agent connects 4.5 s
after that, and the server lists the job 5 s after the accept. With a 4-s join SLA the dispatch still
looks unserved at the deadline (no job listed, no agent) although an agent is on its way: a watcher that
deletes it and dispatches again gets the first agent anyway (its job was terminated before it connected,
and its entrypoint runs on for 15 s) beside the second.

    fake = FakeLiveKit(KEY, SECRET)       # or the e2e `World.cold_start()`
    cold_start(fake, "notetaker")
    fake.create_dispatch("call-1", "notetaker")   # the application's dispatch; the worker answers it
    ...
    assert fake.doubled("call-1", "notetaker") == []   # never two copies together

`sleepy`: issue 25's Cloud deployment that went dormant after a quiet night and did not wake for the first
session of the morning until it was redeployed. After `quiet` seconds without a dispatch of the agent, its
dispatches are accepted and nobody comes (no job: no worker takes them) until `RestartAgent` of its Cloud
agent id (`cloud_agent_id`, registered by the scenario), a deploy hook (`POST /deploy-hook`) or
`fake.redeploy(name)`; then it answers new dispatches again, its quiet spell starting afresh.

    fake = FakeLiveKit(KEY, SECRET, clock=clock)
    sleepy(fake, "notetaker", quiet=600)          # a worker for it, and a deployment that sleeps
    clock.now += 600                              # the night
    ...                                           # a dispatch now: listed, no job, no agent
    fake.deployments["notetaker"].swallowed      # the dispatches it took asleep

`stuck_initializing`: issue 26's agent that joins, publishes its audio and never finishes starting: its
`lk.agent.state` stays `initializing` (a hung prewarm, a model that never loads). Its worker's first agent
is stuck; the agents of its later jobs start and listen (`agent_states.HEALTHY`), as a replacement does.

    stuck_initializing(fake, "notetaker")
    fake.create_dispatch("call-1", "notetaker")   # its agent joins, and stays initializing

`fallback_agent`: issue 27's small agent on other workers (`apology`) that Warden dispatches when the
expected agent cannot be brought back: a warm worker whose agents start and listen, untouched by the
expected agent's outage; `abandoned_call`: a phone caller in a room whose agent never comes (no worker is
registered for it), the room Warden transfers.

    fallback_agent(fake, "apology")
    send(abandoned_call(fake, "call-_+15550100123_", "+15550100123", agent_name="assistant"))
"""

from __future__ import annotations

from devtools.simulator.agent_states import HEALTHY, STUCK_INITIALIZING
from devtools.simulator.base import Webhook
from devtools.simulator.deployments import Deployment
from devtools.simulator.dispatch import ACCEPT_AFTER, COLD_START, JOB_LISTING_LAG, Dispatches, Worker
from devtools.simulator.livekit import FakeLiveKit

SLEEPY_AGENT_ID = "CA_sleepy"


def cold_start(fake: Dispatches, agent_name: str) -> Worker:
    """From now on the stand-in lists jobs as late as the server does, and `agent_name`'s worker is the
    cold-starting one (its entrypoint keeps running after a termination). Returns the worker."""
    fake.job_listing_lag = JOB_LISTING_LAG
    return fake.add_worker(agent_name, accept_after=ACCEPT_AFTER, cold_start=COLD_START, keeps_running=True)


def sleepy(
    fake: FakeLiveKit,
    agent_name: str,
    *,
    quiet: float,
    sleeps: int | None = None,
    cloud_agent_id: str = SLEEPY_AGENT_ID,
    worker: bool = True,
) -> Deployment:
    """`agent_name`'s deployment falls asleep after `quiet` seconds without a dispatch (from now), and is a
    Cloud agent `cloud_agent_id` whose RestartAgent wakes it; with `worker`, a worker for it registers
    too (a warm one: what answers while it is awake); `sleeps`: it falls asleep only that many times.
    Returns the deployment."""
    if worker:
        fake.add_worker(agent_name)
    fake.cloud_agents[cloud_agent_id] = agent_name
    return fake.deployment(agent_name, sleep_after=quiet, sleeps=sleeps)


def stuck_initializing(fake: Dispatches, agent_name: str, *, times: int = 1) -> Worker:
    """A worker for `agent_name` registers whose first `times` agents stay `initializing` for good and
    whose later ones start and listen. Returns the worker."""
    return fake.add_worker(agent_name, states=(STUCK_INITIALIZING,) * times + (HEALTHY,))


def fallback_agent(fake: Dispatches, agent_name: str = "apology") -> Worker:
    """A warm worker for the fallback agent `agent_name` registers (its agents start and listen)."""
    return fake.add_worker(agent_name, states=(HEALTHY,))


def abandoned_call(fake: Dispatches, room: str, number: str, *, agent_name: str = "") -> list[Webhook]:
    """A phone caller (identity `sip_<number>`) joins `room` and speaks; with `agent_name`, the
    application dispatches that agent, whose worker never comes (none is registered for it). Returns the
    webhooks for the test to send, as `join` does."""
    caller = f"sip_{number}"
    webhooks = fake.join(room, caller, caller=number) + fake.publish(room, caller)
    if agent_name:
        fake.create_dispatch(room, agent_name)
    return webhooks
