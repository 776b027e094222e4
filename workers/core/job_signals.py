"""LiveKit's own job signals, read from a room's dispatches as `ListDispatch` lists them (each job's
status, `JobState.reason` and `worker_id`). Pure; `workers.core.recovery` reads them at a check.

The rules, in plain words:

1. A job LiveKit is retrying itself (`JSR_RETRYING`, not yet running) may still bring its agent:
   Warden does not re-dispatch while it does, for at most one more join SLA after the deadline that
   found it (`retry_until`), then acts as without it.
2. A dispatch whose job was refused for want of capacity (`JSR_NO_CAPACITY`, and no job of it
   running) says the agent's workers are full (`refused`), and is not awaited as a job that may still
   connect (a later dispatch whose job is not listed yet is taken for refused too, until it is): a
   restart adds no capacity, so Warden
   keeps re-dispatching with backoff, never gives the room up for it, and reports a capacity incident.
3. A dispatch whose jobs all ended because someone meant them to (`JS_CANCELLED`, `JSR_ROOM_CLOSED`,
   `JSR_DISPATCH_DELETED`) is no failure (`let_go`): nothing to re-dispatch, no breach; the room is
   looked at again a while later (`LET_GO_LOOK_AGAIN`), so that a dispatch made since is acted on. A
   deleted dispatch is no longer listed: an `agent_job_ended` webhook saying so (LiveKit Cloud) is
   remembered on the agent's part (`AgentView.let_go`, its dispatch) until a dispatch is made since.
4. A job a worker accepted (`JS_RUNNING`, or `JS_FAILED` for no reason LiveKit gives) whose agent is
   not in the room, for an agent that never came since the dispatch was made, is a job that worker
   took and did not serve (`unjoined`): counted per worker towards naming it in the incident. A failed
   job whose agent had come (it left a room no person was in: a normal shutdown) is not.
"""

from __future__ import annotations

from collections.abc import Iterable

from workers.core.events import DispatchInfo, JobReason, JobStatus

_LET_GO = (JobReason.ROOM_CLOSED, JobReason.DISPATCH_DELETED)
_SERVING = (JobStatus.RUNNING, JobStatus.SUCCESS)
_TOOK = (JobStatus.RUNNING, JobStatus.FAILED)
LET_GO_LOOK_AGAIN = 60.0  # a room whose agent's job was let go is looked at again this often at most
MAX_BACKOFF_DOUBLINGS = 5  # a room refused for want of capacity is re-checked 32 join SLAs apart at most


def retrying(dispatch: DispatchInfo) -> bool:
    """LiveKit is retrying a job of this dispatch itself (rule 1)."""
    return any(j.reason == JobReason.RETRYING and j.status not in _SERVING for j in dispatch.jobs)


def retry_until(dispatch: DispatchInfo, since: float, join_sla: float, redispatches: int) -> float:
    """Until when Warden leaves a retrying dispatch to LiveKit: one join SLA past the deadline that judges
    it, the join deadline for a room's first dispatch (people waiting `since`), the confirm deadline of
    Warden's own re-dispatch (`confirm_wait`). Read off the dispatch, not the deadline, so that looking
    again does not move it."""
    return max(dispatch.created_at, since) + confirm_wait(join_sla, redispatches) + join_sla


def confirm_wait(join_sla: float, redispatches: int) -> float:
    """How long after the `redispatches`-th re-dispatch its confirm deadline falls (0: the join SLA):
    `join_sla` doubled per re-dispatch before it, at most `MAX_BACKOFF_DOUBLINGS` times (re-dispatches
    go on past the limit only when the workers are full, rule 2)."""
    return join_sla * float(2 ** min(max(0, redispatches - 1), MAX_BACKOFF_DOUBLINGS))


def refused(dispatch: DispatchInfo) -> bool:
    """A job of this dispatch was refused for want of capacity, and none of it runs (rule 2)."""
    jobs = dispatch.jobs
    full = any(j.reason == JobReason.NO_CAPACITY for j in jobs)
    return full and not any(j.status in _SERVING for j in jobs)


def let_go(dispatch: DispatchInfo) -> bool:
    """Every job of this dispatch ended because someone meant it to (rule 3)."""
    return bool(dispatch.jobs) and all(meant(j.status, j.reason) for j in dispatch.jobs)


def meant(status: int, reason: int) -> bool:
    """A job in `status` for `reason` ended because someone meant it to (rule 3)."""
    return status == JobStatus.CANCELLED or reason in _LET_GO


def unjoined(
    dispatches: Iterable[DispatchInfo], present: frozenset[str], *, after: float | None
) -> tuple[tuple[str, str], ...]:
    """(dispatch id, worker id) of each job a worker took whose agent is not `present` (rule 4), among
    the dispatches made after `after` (when our agent was last there; None: it never came)."""
    return tuple(
        (d.id, j.worker_id)
        for d in dispatches
        if after is None or d.created_at > after
        for j in d.jobs
        if j.worker_id
        and j.status in _TOOK
        and j.reason == JobReason.UNSPECIFIED
        and j.identity not in present
    )
