"""Warden's jobs as they sit in ARQ's queue: the function names, the job ids and the arguments of
each, and the one way of queueing each through a `JobQueue` (`workers.queue.enqueue`).

This is wire format: a job queued by one version of Warden is run by the next, so the names, the id
formats and the order of the arguments below never change without a migration of queued jobs
(`tests/component/test_queue_contract.py` runs jobs written exactly as the previous version did).

Every job id starts with its kind (`webhook:`, `deadline:`, `heartbeat:`, `escalate:`, and `retry:`
before a re-run's), and no input is an id as it is: a webhook's is its event's id, which the reduction
bounds to LiveKit's form or hashes (`workers.core.bounds.event_id`), a heartbeat's hashes the room's name
and the agent's identity. So no webhook can take the id of a room's deadline, an escalation or one of
ARQ's crons (`cron:…`), and every id fits a dead letter's (160 characters).

Before ids had kinds (issue 24), a webhook's job id was the bare event id (`EV_…`): such jobs still run
(ARQ runs a job by the function it names, whatever its id), and a redelivery queued after the upgrade
under `webhook:EV_…` is recorded once all the same, since the event's id is unique in the database.
"""

from __future__ import annotations

import hashlib
from typing import Any

from workers.queue.enqueue import JobQueue

APPLY_WEBHOOK = "apply_webhook"
ON_DEADLINE = "on_deadline"
HEARTBEAT = "heartbeat"
REPORT_TO_INCIDENT = "report_to_incident"
OPERATOR_ACTION = "operator_action"  # issue 28: an operator's acknowledgement, restart or re-dispatch
# The same job as versions before issue 22 named it (and its ids: "escalate:{notice}"): still run, so
# that jobs waiting in Redis, and dead letters retried, survive the upgrade.
ESCALATE = "escalate"


RETRY_PREFIX = "retry:"
_KINDS = {
    "webhook": APPLY_WEBHOOK,
    "deadline": ON_DEADLINE,
    "heartbeat": HEARTBEAT,
    "incident": REPORT_TO_INCIDENT,
    "escalate": ESCALATE,  # an incident report's id before issue 22
    "operator": OPERATOR_ACTION,
}
# What an operator may ask for by hand (`queue_operator_action`).
ACK, RESTART, REDISPATCH = "ack", "restart", "redispatch"


def function_of(job_id: str) -> str:
    """The function a job id belongs to, by its kind (and a re-run's by the job it re-runs); "" for an
    id of no kind (a webhook queued before ids had one: its bare event id)."""
    return _KINDS.get(original_job_id(job_id).split(":", 1)[0], "")


def webhook_job_id(event_id: str) -> str:
    """One job per event (`Event.id`, already bounded by the reduction): LiveKit's retries are one job."""
    return f"webhook:{event_id}"


def deadline_job_id(room_sid: str, attempt: int) -> str:
    """The deterministic id of a room's deadline job: one timer per (room, attempt), however often asked."""
    return f"deadline:{room_sid}:{attempt}"


def heartbeat_job_id(room_name: str, identity: str, at: float) -> str:
    """One heartbeat job per agent and second: an agent that reports more often is heard once a second.
    The room and the agent are hashed together: names hold any character (a `:` too) and run long."""
    return f"heartbeat:{agent_key(room_name, identity)}:{int(at)}"


def agent_key(room_name: str, identity: str) -> str:
    """A short key for an agent in a room (32 hex digits), for ids made of the two."""
    pair = f"{room_name}\x00{identity}".encode("utf-8", "surrogatepass")  # neither may hold a NUL
    return hashlib.sha256(pair).hexdigest()[:32]


async def queue_webhook(enqueuer: JobQueue, event_id: str, event: dict[str, Any], received_at: float) -> bool:
    """Queue `apply_webhook(event, received_at)` under the event's job id: LiveKit's retries are one job.
    Spaced among its room's jobs (`workers.queue.enqueue`): one room's storm does not hold the others."""
    room = str(event.get("room_sid") or event.get("room_name") or "")
    return await enqueuer.enqueue(APPLY_WEBHOOK, webhook_job_id(event_id), event, received_at, room=room)


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


def incident_report_job_id(notice_id: str) -> str:
    """One incident report job per outbox notice (a breach, a failed room, a recovery), however often
    delivered."""
    return f"incident:{notice_id}"


async def queue_incident_report(
    enqueuer: JobQueue, notice_id: str, room_sid: str, action: dict[str, Any]
) -> bool:
    """Queue `report_to_incident(notice_id, room_sid, action)`: the notice's report to its agent's
    incident, as its own job, ahead of every room job waiting (an outage's restart never waits behind
    the rooms it is for)."""
    return await enqueuer.enqueue(
        REPORT_TO_INCIDENT, incident_report_job_id(notice_id), notice_id, room_sid, action, priority=True
    )


def operator_job_id(action: str, target: str, agent: str = "") -> str:
    """One job per operator request while it is queued or running (its result is not kept): a request
    made again before the first is applied is refused, and one made after is judged by the state the
    first left. A room's name and an agent's run long: they are hashed."""
    return f"operator:{action}:{agent_key(target, agent) if agent else target}"


async def queue_operator_action(
    enqueuer: JobQueue, action: str, target: str, by: str, at: float, agent: str = ""
) -> bool:
    """Queue `operator_action(action, target, by, at, agent)` ahead of the room jobs waiting: an
    acknowledgement or a restart of incident `target`, or a re-dispatch of `agent` in room `target`,
    asked for by the operator `by`; False when the same request is still queued or running."""
    return await enqueuer.enqueue(
        OPERATOR_ACTION,
        operator_job_id(action, target, agent),
        action,
        target,
        by,
        at,
        agent,
        priority=True,
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
