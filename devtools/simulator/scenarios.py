"""Set-ups of the stand-in LiveKit that reproduce what issue 23 saw against livekit-server, for tests.

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
"""

from __future__ import annotations

from devtools.simulator.dispatch import ACCEPT_AFTER, COLD_START, JOB_LISTING_LAG, Dispatches, Worker


def cold_start(fake: Dispatches, agent_name: str) -> Worker:
    """From now on the stand-in lists jobs as late as the server does, and `agent_name`'s worker is the
    cold-starting one (its entrypoint keeps running after a termination). Returns the worker."""
    fake.job_listing_lag = JOB_LISTING_LAG
    return fake.add_worker(agent_name, accept_after=ACCEPT_AFTER, cold_start=COLD_START, keeps_running=True)
