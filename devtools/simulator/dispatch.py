"""Dispatches, jobs and agent workers in the stand-in LiveKit, timed as livekit-server v1.13.5 with
livekit-agents 1.8.9 workers were measured to behave (`../shared/LIVEKIT.md`, issue 23):

- A room started with no agent configured gets the automatic dispatch, with an empty `agent_name`; one
  started with agents gets one dispatch each. `CreateDispatch` into a room the server does not have
  creates the room (its `room_started`, its automatic dispatch) and adds the dispatch.
- A dispatch is offered once, when it is made, to a registered worker of its name whose load is under
  0.7 (the least loaded); with none, it stays without a job for good: a worker that registers later
  is not offered it, and nothing retries.
- The worker accepts after `accept_after`; the job (JS_RUNNING, the agent's identity, the worker's id)
  is listed by `ListDispatch` only `job_listing_lag` after that (5.0-5.1 s measured), and stays
  JS_RUNNING for good, even after its agent left or crashed. Its agent connects `cold_start` after the
  accept (participant_joined, then track_published, sent by the stand-in).
- `DeleteDispatch` answers at once and the dispatch is no longer listed; its job is terminated behind
  the answer. An agent already in the room is removed `removal_wait` later (the server waits up to 3 s
  for it to go; PARTICIPANT_REMOVED) — at once, by itself, if its entrypoint ends with the job. An agent
  not yet connected is not removed: if its entrypoint keeps running it still joins, and stays until
  livekit-agents ends the job `entrypoint_grace` (15 s) after the termination.
- The open-source server sends no `agent_job_*` webhooks and never re-dispatches a job by itself.
- Newer servers say why a job is in its status (`JobState.reason`): opt-in, in `job_states.py` (a
  deployment that is full, LiveKit retrying an assignment, a cancelled job).
- A dispatch of an agent whose deployment is asleep (`deployments.py`) is offered to no worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import count

from livekit.protocol import agent, models
from livekit.protocol import agent_dispatch as ad

from devtools.simulator.agent_states import SILENT, States
from devtools.simulator.base import TwirpFailure, room_sid
from devtools.simulator.deployments import Deployments
from devtools.simulator.job_states import JobStates
from devtools.simulator.rooms import Rooms

JOB_LISTING_LAG = 5.0  # seconds from a worker's accept to the job in ListDispatch (5.0-5.1 s) [real]
REMOVAL_WAIT = 3.0  # DeleteDispatch: the server waits this long for a terminated job's agent to go
ENTRYPOINT_GRACE = 15.0  # livekit-agents waits this long for an entrypoint after a termination
FULL_LOAD = 0.7  # a worker at this load or above is offered no job (livekit-agents' production threshold)
ACCEPT_AFTER = 0.2  # seconds a worker takes to accept a job (the worker)
WARM_START = 1.0  # seconds a warm agent needs to connect after its worker accepted
COLD_START = 4.5  # seconds the cold-starting agent needed


@dataclass
class Worker:
    """An agent worker registered for `agent_name` (livekit-agents' `WorkerOptions.agent_name`)."""

    agent_name: str
    id: str
    load: float = 0.0  # at FULL_LOAD or above it is offered no job; change it at will
    accept_after: float = ACCEPT_AFTER
    cold_start: float = WARM_START  # after accepting, its agent connects (math.inf: never)
    keeps_running: bool = True  # its entrypoint runs on after a termination (as one that awaits forever)
    publishes: bool = True  # its agent publishes an audio track on joining
    # its agents' `lk.agent.state` sequences (`agent_states.py`), one per job in turn, the last repeated
    states: tuple[States, ...] = (SILENT,)
    jobs: list[str] = field(default_factory=list)  # the ids of the jobs it accepted


@dataclass
class Job:
    """A dispatch's job: accepted by `worker` (None: no worker took it — refused, retried or cancelled
    first, `job_states.py` — or an agent a test brought with `join(dispatch_id=)`)."""

    id: str
    dispatch_id: str
    room: str
    agent_name: str
    identity: str  # its agent's participant identity
    assigned_at: float
    listed_at: float  # ListDispatch shows it from then on
    worker: Worker | None = None
    terminated_at: float | None = None
    status: int = agent.JobStatus.JS_RUNNING  # as listed (`job_states.py`: pending, refused, cancelled)
    reason: int = agent.JobStateReason.JSR_UNSPECIFIED


@dataclass
class Dispatches(Rooms, Deployments, JobStates):
    dispatches: dict[str, ad.AgentDispatch] = field(default_factory=dict)  # live ones, by id
    jobs: dict[str, Job] = field(default_factory=dict)  # dispatch id -> its job
    workers: list[Worker] = field(default_factory=list)
    created: list[tuple[str, str]] = field(default_factory=list)  # Warden's CreateDispatch: (room, name)
    on_dispatch: Callable[[ad.AgentDispatch], None] | None = None  # told each CreateDispatch (scripts)
    automatic_dispatch: bool = True  # rooms started with no agent get livekit-server's empty-name dispatch
    job_listing_lag: float = JOB_LISTING_LAG
    removal_wait: float = REMOVAL_WAIT
    entrypoint_grace: float = ENTRYPOINT_GRACE
    # what `add_worker` gives a worker unless told otherwise
    accept_after: float = ACCEPT_AFTER
    cold_start: float = WARM_START
    worker_load: float = 0.0
    _ids: count[int] = field(default_factory=lambda: count(1))

    # --- the world, as tests arrange it -------------------------------------------------------

    def add_worker(
        self,
        agent_name: str,
        *,
        load: float | None = None,
        accept_after: float | None = None,
        cold_start: float | None = None,
        keeps_running: bool = True,
        publishes: bool = True,
        states: tuple[States, ...] = (SILENT,),
    ) -> Worker:
        """A worker registers for `agent_name`: dispatches made from now on are offered to it."""
        worker = Worker(
            agent_name,
            f"AW_{next(self._ids)}",
            load=self.worker_load if load is None else load,
            accept_after=self.accept_after if accept_after is None else accept_after,
            cold_start=self.cold_start if cold_start is None else cold_start,
            keeps_running=keeps_running,
            publishes=publishes,
            states=states,
        )
        self.workers.append(worker)
        return worker

    def create_dispatch(
        self, room: str, agent_name: str, *, metadata: str = "", attributes: dict[str, str] | None = None
    ) -> ad.AgentDispatch:
        """The application's own dispatch (not Warden's: not listed in `created`)."""
        request = ad.CreateAgentDispatchRequest(
            room=room, agent_name=agent_name, metadata=metadata, attributes=attributes or {}
        )
        dispatch = self._CreateDispatch(request)
        self.created.remove((room, agent_name))
        return dispatch

    def live_dispatches(self, room: str, agent_name: str) -> list[ad.AgentDispatch]:
        return [d for d in self.dispatches.values() if d.room == room and d.agent_name == agent_name]

    # --- rooms coming and going -----------------------------------------------------------------

    def _room_created(self, room: str, agents: Sequence[str | ad.RoomAgentDispatch]) -> None:
        for wanted in agents or (("",) if self.automatic_dispatch else ()):
            if isinstance(wanted, str):
                self._new_dispatch(room, wanted)
            else:
                self._new_dispatch(room, wanted.agent_name, wanted.metadata, dict(wanted.attributes))

    def _room_closed(self, room: str) -> None:
        for dispatch_id in [i for i, d in self.dispatches.items() if d.room == room]:
            del self.dispatches[dispatch_id]

    def _served(self, room: str, dispatch_id: str, identity: str) -> None:
        made = self.dispatches.get(dispatch_id)
        assigned = made.state.created_at / 1e9 if made is not None else self._now()
        name = made.agent_name if made is not None else ""
        job_id = f"AJ_{next(self._ids)}"
        lag = self.job_listing_lag
        self.jobs[dispatch_id] = Job(job_id, dispatch_id, room, name, identity, assigned, assigned + lag)

    # --- jobs: offered, accepted, joined, terminated ----------------------------------------------

    def _new_dispatch(
        self, room: str, agent_name: str, metadata: str = "", attributes: dict[str, str] | None = None
    ) -> ad.AgentDispatch:
        dispatch = ad.AgentDispatch(
            id=f"AD_{next(self._ids)}",
            agent_name=agent_name,
            room=room,
            metadata=metadata,
            attributes=attributes or {},
            state=ad.AgentDispatchState(created_at=int(self._now() * 1e9)),  # nanoseconds
        )
        self.dispatches[dispatch.id] = dispatch
        if not self._answers(dispatch.id, agent_name):
            return dispatch  # its deployment is asleep: no worker takes it (`deployments.py`)
        if self.full(agent_name):  # full: refused for want of capacity (`job_states.py`)
            self._pending(dispatch, agent.JobStateReason.JSR_NO_CAPACITY, self.job_listing_lag)
            self.refused_ids.add(dispatch.id)
            return dispatch
        able = [w for w in self.workers if w.agent_name == agent_name and w.load < FULL_LOAD]
        if able:
            worker = min(able, key=lambda w: w.load)
            generation = self._generation.get(room)
            retrying = self.retry_for.get(agent_name, 0.0)
            if retrying:  # LiveKit retries the assignment itself first (`job_states.py`)
                self._pending(dispatch, agent.JobStateReason.JSR_RETRYING, 0.0)
            delay = retrying + worker.accept_after
            self._later(delay, lambda: self._assign(dispatch, worker, generation))
        return dispatch

    def _pending(self, dispatch: ad.AgentDispatch, reason: int, lag: float) -> None:
        """A job no worker has: JS_PENDING for `reason`, listed `lag` from now."""
        now, job_id = self._now(), f"AJ_{next(self._ids)}"
        self.jobs[dispatch.id] = Job(
            job_id, dispatch.id, dispatch.room, dispatch.agent_name, "", now, now + lag, None, None,
            agent.JobStatus.JS_PENDING, reason,
        )  # fmt: skip

    def cancel_job(self, dispatch_id: str) -> None:
        """The dispatch's job is cancelled (JS_CANCELLED), and terminated; the dispatch stays listed."""
        job = self.jobs.get(dispatch_id)
        if job is None:  # not assigned yet: a cancelled job with no worker, listed as any job
            dispatch = self.dispatches[dispatch_id]
            self._pending(dispatch, agent.JobStateReason.JSR_UNSPECIFIED, self.job_listing_lag)
            job = self.jobs[dispatch_id]
        job.status = agent.JobStatus.JS_CANCELLED
        if job.terminated_at is None and job.worker is not None:
            self._terminate(job)

    def _assign(self, dispatch: ad.AgentDispatch, worker: Worker, generation: int | None) -> None:
        if not self._alive(dispatch.room, generation):
            return
        before = self.jobs.get(dispatch.id)
        if before is not None and before.status == agent.JobStatus.JS_CANCELLED:
            return  # cancelled before a worker took it
        now, job_id = self._now(), f"AJ_{next(self._ids)}"
        job = Job(
            job_id,
            dispatch.id,
            dispatch.room,
            dispatch.agent_name,
            f"agent-{job_id}",  # livekit-agents' default identity
            now,
            now + self.job_listing_lag,
            worker,
        )
        self.jobs[dispatch.id] = job
        worker.jobs.append(job_id)
        if dispatch.id not in self.dispatches:  # deleted while being assigned: terminated once launched
            self._terminate(job)
        if math.isfinite(worker.cold_start):
            self._later(worker.cold_start, lambda: self._connect(job, worker, generation))

    def _connect(self, job: Job, worker: Worker, generation: int | None) -> None:
        if not self._alive(job.room, generation):
            return
        if job.terminated_at is not None and not worker.keeps_running:
            return  # its entrypoint ended with the job, before it connected
        self._announce(job.room, self.join(job.room, job.identity, agent_name=job.agent_name))
        if worker.publishes:
            self._announce(job.room, self.publish(job.room, job.identity))
        nth = worker.jobs.index(job.id)  # which of its jobs this is
        self.play_states(job.room, job.identity, worker.states[min(nth, len(worker.states) - 1)])
        if job.terminated_at is not None:  # terminated before it connected: nobody removes it
            ends = job.terminated_at + self.entrypoint_grace
            self.clock.call_at(ends, lambda: self._entrypoint_ended(job, generation))

    def _entrypoint_ended(self, job: Job, generation: int | None) -> None:
        """livekit-agents ends a terminated job whose entrypoint ran on: its agent leaves."""
        if self._alive(job.room, generation):
            self._announce(job.room, self.leave(job.room, job.identity))

    def _terminate(self, job: Job) -> None:
        job.terminated_at = self._now()
        if job.identity not in self.rooms.get(job.room, {}):
            return  # not connected yet: the server removes nobody (a worker's agent may still join)
        if job.worker is not None and not job.worker.keeps_running:
            self._announce(job.room, self.leave(job.room, job.identity))  # it goes with its job
            return
        generation = self._generation.get(job.room)

        def remove() -> None:
            if self._alive(job.room, generation):
                self._remove(job.room, job.identity)

        self._later(self.removal_wait, remove)

    # --- Twirp: AgentDispatchService ------------------------------------------------------------

    def _CreateDispatch(self, req: ad.CreateAgentDispatchRequest) -> ad.AgentDispatch:
        # livekit-server creates a room it is asked to dispatch to: room_started, the automatic dispatch
        self._announce(req.room, self.start_room(req.room))
        dispatch = self._new_dispatch(req.room, req.agent_name, req.metadata, dict(req.attributes))
        self.created.append((req.room, req.agent_name))
        if self.on_dispatch is not None:
            self.on_dispatch(dispatch)
        return dispatch

    def _DeleteDispatch(self, req: ad.DeleteAgentDispatchRequest) -> ad.AgentDispatch:
        dispatch = self.dispatches.pop(req.dispatch_id, None)
        if dispatch is None:
            raise TwirpFailure("not_found", "dispatch not found")
        job = self.jobs.get(dispatch.id)
        if job is not None and job.terminated_at is None:
            self._terminate(job)
        return dispatch

    def _ListDispatch(self, req: ad.ListAgentDispatchRequest) -> ad.ListAgentDispatchResponse:
        if req.room not in self.rooms:  # as livekit-server answers (after 3 s: `missing_room_wait`)
            raise TwirpFailure("unavailable", "no response from servers")
        found = [self._listed(d) for d in self.dispatches.values() if d.room == req.room]
        return ad.ListAgentDispatchResponse(agent_dispatches=found)

    def _listed(self, dispatch: ad.AgentDispatch) -> ad.AgentDispatch:
        """A dispatch as listed: with its job once the listing lag has passed, JS_RUNNING for good
        (livekit-server never updates the listed status, even after the agent left)."""
        job = self.jobs.get(dispatch.id)
        if job is None or job.listed_at > self._now():
            return dispatch
        listed = ad.AgentDispatch()
        listed.CopyFrom(dispatch)
        added = listed.state.jobs.add(
            id=job.id,
            dispatch_id=dispatch.id,
            type=agent.JobType.JT_ROOM,
            room=models.Room(name=job.room, sid=room_sid(job.room)),
            agent_name=dispatch.agent_name,
            metadata=dispatch.metadata,
        )
        added.state.status = job.status  # type: ignore[assignment]
        added.state.reason = job.reason  # type: ignore[assignment]
        added.state.participant_identity = job.identity
        added.state.worker_id = job.worker.id if job.worker is not None else ""
        added.state.started_at = added.state.updated_at = int(job.assigned_at * 1e9)
        return listed
