"""Warden's jobs as they sit in ARQ's queue: the function names, the job ids and the arguments of
each, and the one way of queueing each through a `JobQueue` (`workers.queue.enqueue`).

This is wire format: a job queued by one version of Warden is run by the next, so the names, the id
formats and the order of the arguments below never change without a migration of queued jobs
(`tests/component/test_queue_contract.py` runs jobs written exactly as the previous version did).
"""

from __future__ import annotations

from typing import Any

from workers.queue.enqueue import JobQueue

APPLY_WEBHOOK = "apply_webhook"
ON_DEADLINE = "on_deadline"
HEARTBEAT = "heartbeat"
ESCALATE = "escalate"


RETRY_PREFIX = "retry:"


def function_of(job_id: str) -> str:
    """The function a job id belongs to, for the ids that say it (deadlines, heartbeats, escalations,
    and re-runs of those); webhooks' ids are LiveKit's event ids and say nothing ("")."""
    prefix = original_job_id(job_id).split(":", 1)[0]
    return {"deadline": ON_DEADLINE, "heartbeat": HEARTBEAT, "escalate": ESCALATE}.get(prefix, "")


def deadline_job_id(room_sid: str, attempt: int) -> str:
    """The deterministic id of a room's deadline job: one timer per (room, attempt), however often asked."""
    return f"deadline:{room_sid}:{attempt}"


def heartbeat_job_id(room_name: str, identity: str, at: float) -> str:
    """One heartbeat job per agent and second: an agent that reports more often is heard once a second."""
    return f"heartbeat:{room_name}:{identity}:{int(at)}"


async def queue_webhook(enqueuer: JobQueue, event_id: str, event: dict[str, Any], received_at: float) -> bool:
    """Queue `apply_webhook(event, received_at)` under the event's id: LiveKit's retries are one job."""
    return await enqueuer.enqueue(APPLY_WEBHOOK, event_id, event, received_at)


async def queue_deadline(enqueuer: JobQueue, room_sid: str, attempt: int, at: float | None = None) -> bool:
    """Queue `on_deadline(room_sid, attempt)` to run at `at` (epoch seconds; now when absent or past)."""
    return await enqueuer.enqueue(
        ON_DEADLINE, deadline_job_id(room_sid, attempt), room_sid, attempt, defer_until=at
    )


async def queue_heartbeat(enqueuer: JobQueue, room_name: str, identity: str, at: float) -> bool:
    """Queue `heartbeat(room_name, identity, at)`."""
    return await enqueuer.enqueue(
        HEARTBEAT, heartbeat_job_id(room_name, identity, at), room_name, identity, at
    )


def escalation_job_id(notice_id: str) -> str:
    """One escalation job per outbox notice (a breach, a failed room, a recovery), however often delivered."""
    return f"escalate:{notice_id}"


async def queue_escalation(enqueuer: JobQueue, notice_id: str, room_sid: str, action: dict[str, Any]) -> bool:
    """Queue `escalate(notice_id, room_sid, action)`: the notice's escalation step, as its own job, ahead
    of every room job waiting (an outage's restart never waits behind the rooms it is for)."""
    return await enqueuer.enqueue(
        ESCALATE, escalation_job_id(notice_id), notice_id, room_sid, action, priority=True
    )


def retry_job_id(job_id: str, n: int) -> str:
    """The id of the `n`-th re-run of the dead-lettered job `job_id` (ARQ refuses a finished job's id)."""
    return f"{RETRY_PREFIX}{job_id}:{n}"


def original_job_id(job_id: str) -> str:
    """The job a re-run re-runs (`retry_job_id`'s inverse); any other id is its own."""
    if job_id.startswith(RETRY_PREFIX):
        return job_id.removeprefix(RETRY_PREFIX).rsplit(":", 1)[0]
    return job_id


async def queue_retry(enqueuer: JobQueue, job_id: str, function: str, args: list[Any]) -> str:
    """Queue `function(*args)` again, as the job `job_id` was, under the first re-run id ARQ does not
    already know (an earlier re-run keeps its id while its result is kept); that id."""
    n = 1
    while not await enqueuer.enqueue(function, retry_job_id(job_id, n), *args):
        n += 1
    return retry_job_id(job_id, n)
