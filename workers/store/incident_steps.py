"""Incident steps in the database: every report to an incident is a transition of the incident machine
(`workers.core.incident`), applied in one transaction under the row locks of its deployment's restart
and of the incident, and written with all it decided: the new state, the deployment's restart when the
step claimed it, the lines of the incident's log, and the outbox rows of its alerts and deploy hook.

So a step happens once however many rooms, jobs and worker processes report at once: the first
transaction takes it, the others find it taken. Locks are always taken deployment first, then
incidents by id, so that an outcome reaching every incident of a deployment never deadlocks with a
report. On SQLite the writer holds the whole database, which serialises the same way.

The decisions that call out (the Cloud restart, the rollback, fresh starts, the comeback watch) are
returned in `Applied` for the caller to carry out after the commit; the restart and the rollback are
leases the machine takes up again when their caller dies before an outcome is recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core.alerts import Notify
from workers.core.incident import (
    CLAIMING,
    HOOK,
    Decision,
    DeploymentRestart,
    Incident,
    IncidentPolicy,
    IncidentState,
    Note,
    Report,
    Restart,
    Signal,
    transition,
)
from workers.store import maintenance, outbox
from workers.store.engine import dialect_insert, writing
from workers.store.models import DEPLOYMENT_RESTARTS, INCIDENT_ACTIONS, INCIDENT_ROOMS, INCIDENTS

# The outbox rows of a step's alerts and deploy hook: (the incident, its decisions, its rooms' names).
Rows = Callable[[Incident, tuple[Decision, ...], list[str]], list[dict[str, Any]]]
# Signals that open an incident when the agent has none open.
_OPENING = (Signal.OUTAGE, Signal.ROOM_FAILED, Signal.CANARY_FAILED, Signal.CAPACITY)


@dataclass(frozen=True)
class Applied:
    """A step taken: the incident after it, what it decided, and the outbox rows written for it (held
    by the caller for their first try)."""

    incident: Incident
    decisions: tuple[Decision, ...]
    rows: list[dict[str, Any]]
    deployment: str


async def report(
    engine: AsyncEngine,
    agent_name: str,
    report: Report,
    policy: IncidentPolicy,
    *,
    deployment: str = "",
    incident_id: str = "",
    rooms: Sequence[tuple[str, str]] = (),
    rows: Rows | None = None,
) -> Applied | None:
    """Apply `report` to incident `incident_id`, or to the agent's open incident — opened now, for
    `deployment`, with `rooms`, when there is none and the report is an outage's. None when there is no
    such incident, or for a sweep that finds nothing to do: it asks without a write lock first, as most
    sweeps find nothing."""
    if report.signal is Signal.SWEPT and not await _would_change(engine, agent_name, report, policy):
        return None
    async with writing(engine) as connection:
        restart = await _lock_restart(connection, deployment) if report.signal in CLAIMING else None
        if not incident_id and report.signal in _OPENING:
            await connection.execute(
                dialect_insert(connection, INCIDENTS)
                .values(
                    id=f"IN_{uuid.uuid4().hex[:12]}",
                    agent_name=agent_name,
                    open_key=agent_name,
                    reason=report.reason[:512],
                    opened_at=report.at,
                    state=IncidentState.NEW,
                    deployment=deployment,
                )
                .on_conflict_do_nothing(index_elements=["open_key"])
            )
        row = await _lock_incident(connection, agent_name, incident_id)
        if row is None:
            return None
        if rooms:
            await join(connection, row.id, rooms, report.at)
        if restart is not None and row.deployment != deployment:  # its deployment was another then
            restart = await _lock_restart(connection, row.deployment)
        facts = replace(report, restart=restart or DeploymentRestart())
        if report.signal in (Signal.ROOM_FAILED, Signal.CANARY_FAILED) or (
            row.maintenance and report.signal in CLAIMING  # its window may have ended: do rooms wait?
        ):
            facts = replace(facts, waiting=await _count_rooms(connection, row.id, waiting=True))
        return await apply(connection, row, facts, policy, rows)


async def restart_outcome(
    engine: AsyncEngine,
    incident_id: str,
    leg: str,
    landed: bool,
    now: float,
    policy_of: Callable[[str], IncidentPolicy],
    rows_of: Callable[[str], Rows],
) -> list[Applied]:
    """One leg of the restart incident `incident_id` called has its outcome. Once its deployment's
    restart has one (a leg landed, or none is left to land) it reaches every open incident of the
    deployment, each moved with its agent's policy and alert rows (`policy_of`, `rows_of`). An incident
    from before deployments were kept (none named) hears its own restart's outcome alone."""
    async with writing(engine) as connection:
        deployment = await connection.scalar(
            select(INCIDENTS.c.deployment).where(INCIDENTS.c.id == incident_id)
        )
        if deployment:
            before = await _lock_restart(connection, deployment)
            after = before.outcome(leg, landed, now)
            if after == before or (after.landed_at is None and not after.failed):
                await _write_restart(connection, deployment, after)
                return []
            await _write_restart(connection, deployment, after)
            landed = after.landed_at is not None
            which = INCIDENTS.c.deployment == deployment
        else:
            which = INCIDENTS.c.id == incident_id
        found = await connection.execute(
            select(INCIDENTS)
            .where(which, INCIDENTS.c.open_key.is_not(None))
            .order_by(INCIDENTS.c.id)
            .with_for_update()
        )
        signal = Signal.RESTART_LANDED if landed else Signal.RESTART_FAILED
        return [
            await apply(
                connection,
                row,
                Report(signal, now, leg=leg),
                policy_of(row.agent_name),
                rows_of(row.agent_name),
            )
            for row in found.all()
        ]


async def apply(
    connection: AsyncConnection, row: Row[Any], report: Report, policy: IncidentPolicy, rows: Rows | None
) -> Applied:
    """The transition of the locked incident `row` on `report`, with the maintenance window covering
    its agent now (read here, for every decision), written in the caller's transaction (nothing is
    written when it changes nothing)."""
    incident = incident_of(row)
    report = replace(report, maintenance=await _window(connection, row.agent_name, report.at))
    step = transition(incident, report, policy)
    if step.incident == incident and not step.decisions and step.restart is None:
        return Applied(incident, (), [], row.deployment)
    after = step.incident
    values: dict[str, Any] = {
        "state": after.state,
        "reason": after.reason[:512],
        "opened_at": after.opened_at,
        "restarted_at": after.restarted_at,
        "rollback_claimed_at": after.rollback_claimed_at,
        "canary_failing": after.canary_failing,
        "kind": after.kind,
        "workers": workers_column(after.workers),
        "acknowledged_at": after.acknowledged_at,
        "acknowledged_by": after.acknowledged_by[:64],
        "maintenance": after.maintenance,
    }
    if after.resolved_at is not None:
        values |= {"resolved_at": after.resolved_at, "open_key": None}
    await connection.execute(update(INCIDENTS).where(INCIDENTS.c.id == after.id).values(values))
    if step.restart is not None:
        await _write_restart(connection, row.deployment, step.restart)
    notes = [d for d in step.decisions if isinstance(d, Note)]
    if notes:
        await connection.execute(
            insert(INCIDENT_ACTIONS),
            [
                {
                    "incident_id": after.id,
                    "at": report.at,
                    "action": n.action,
                    "outcome": n.outcome[:1024],
                    "carried_out": n.carried_out,
                }
                for n in notes
            ],
        )
    written: list[dict[str, Any]] = []
    if rows is not None and any(_calls_out(d) for d in step.decisions):
        names = await connection.scalars(
            select(INCIDENT_ROOMS.c.room_name)
            .where(INCIDENT_ROOMS.c.incident_id == after.id)
            .order_by(INCIDENT_ROOMS.c.added_at, INCIDENT_ROOMS.c.room_sid)
        )
        written = rows(after, step.decisions, list(names))
        await outbox.write(connection, written)
    return Applied(after, step.decisions, written, row.deployment)


def _calls_out(decision: Decision) -> bool:
    """Does the decision become an outbox row (an alert, the deploy hook)?"""
    return isinstance(decision, Notify) or (isinstance(decision, Restart) and HOOK in decision.legs)


def incident_of(row: Row[Any]) -> Incident:
    """The machine's incident from its row."""
    return Incident(
        row.id,
        row.agent_name,
        IncidentState(row.state),
        row.reason,
        row.opened_at,
        row.restarted_at,
        row.rollback_claimed_at,
        row.resolved_at,
        bool(row.canary_failing),
        row.kind,
        workers_of(row.workers),
        row.acknowledged_at,
        row.acknowledged_by,
        bool(row.maintenance),
    )


def workers_column(workers: tuple[tuple[str, int], ...]) -> str:
    """The workers an incident names, as its `workers` column holds them (JSON; ids are bounded, and
    an incident names five at most, `incident_capacity.MOST_NAMED`)."""
    return json.dumps([list(w) for w in workers], separators=(",", ":")) if workers else ""


def workers_of(column: str) -> tuple[tuple[str, int], ...]:
    return tuple((str(worker), int(jobs)) for worker, jobs in json.loads(column)) if column else ()


async def join(
    connection: AsyncConnection, incident_id: str, rooms: Sequence[tuple[str, str]], now: float
) -> None:
    """Add `rooms` (sid, name) to the incident; rooms in it already stay as they were. One executemany
    (built once), not one statement per room."""
    await connection.execute(
        _JOIN[connection.dialect.name],
        [
            {"incident_id": incident_id, "room_sid": sid, "room_name": name, "added_at": now}
            for sid, name in rooms
        ],
    )


async def _would_change(engine: AsyncEngine, agent_name: str, report: Report, policy: IncidentPolicy) -> bool:
    """Would `report` move the agent's open incident, as it stands now (read without a lock)?"""
    async with engine.connect() as connection:
        row = (await connection.execute(select(INCIDENTS).where(INCIDENTS.c.open_key == agent_name))).first()
        if row is None:
            return False
        found = (
            await connection.execute(
                select(DEPLOYMENT_RESTARTS).where(DEPLOYMENT_RESTARTS.c.deployment == row.deployment)
            )
        ).first()
        window = await _window(connection, agent_name, report.at)
    if bool(row.maintenance) != bool(window):  # a window started or ended: the step says so
        return True
    restart = _restart_of(found) if found is not None and row.deployment else DeploymentRestart()
    incident = incident_of(row)
    step = transition(incident, replace(report, restart=restart), policy)
    return step.incident != incident or bool(step.decisions)


async def _window(connection: AsyncConnection, agent_name: str, at: float) -> str:
    """The maintenance window covering the agent at `at`, as the incident's log says it ("" for none)."""
    window = await maintenance.covering(connection, agent_name, at)
    return window.said() if window is not None else ""


# Built once, the statements every report takes: constructing a statement costs more than executing it.
_LOCK_BY_ID = select(INCIDENTS).where(INCIDENTS.c.id == bindparam("which")).with_for_update()
_LOCK_OPEN = select(INCIDENTS).where(INCIDENTS.c.open_key == bindparam("which")).with_for_update()
_ADD_RESTART = {
    name: insert_for(DEPLOYMENT_RESTARTS)
    .values(deployment=bindparam("deployment"))
    .on_conflict_do_nothing(index_elements=["deployment"])
    for name, insert_for in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}
_LOCK_RESTART = (
    select(DEPLOYMENT_RESTARTS)
    .where(DEPLOYMENT_RESTARTS.c.deployment == bindparam("deployment"))
    .with_for_update()
)
_JOIN = {
    name: insert_for(INCIDENT_ROOMS).on_conflict_do_nothing(index_elements=["incident_id", "room_sid"])
    for name, insert_for in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}


async def _lock_incident(connection: AsyncConnection, agent_name: str, incident_id: str) -> Row[Any] | None:
    statement = _LOCK_BY_ID if incident_id else _LOCK_OPEN
    return (await connection.execute(statement, {"which": incident_id or agent_name})).first()


async def _lock_restart(connection: AsyncConnection, deployment: str) -> DeploymentRestart:
    """The deployment's restart, its row locked (made if it has none); nothing for no deployment."""
    if not deployment:
        return DeploymentRestart()
    await connection.execute(_ADD_RESTART[connection.dialect.name], {"deployment": deployment})
    row = (await connection.execute(_LOCK_RESTART, {"deployment": deployment})).one()
    return _restart_of(row)


def _restart_of(row: Row[Any]) -> DeploymentRestart:
    return DeploymentRestart(row.claimed_at, tuple(filter(None, row.pending.split(","))), row.landed_at)


async def _write_restart(connection: AsyncConnection, deployment: str, restart: DeploymentRestart) -> None:
    if deployment:
        await connection.execute(
            update(DEPLOYMENT_RESTARTS)
            .where(DEPLOYMENT_RESTARTS.c.deployment == deployment)
            .values(
                claimed_at=restart.claimed_at, pending=",".join(restart.pending), landed_at=restart.landed_at
            )
        )


async def _count_rooms(connection: AsyncConnection, incident_id: str, *, waiting: bool) -> int:
    """The incident's rooms (only those still waiting, with `waiting`)."""
    which = [INCIDENT_ROOMS.c.incident_id == incident_id]
    if waiting:
        which.append(INCIDENT_ROOMS.c.recovered_at.is_(None))
    return int(await connection.scalar(select(func.count()).select_from(INCIDENT_ROOMS).where(*which)) or 0)


async def deployment_restart(engine: AsyncEngine, deployment: str) -> DeploymentRestart:
    """The deployment's last restart, read without a lock (nothing for no deployment, or none yet)."""
    if not deployment:
        return DeploymentRestart()
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(DEPLOYMENT_RESTARTS).where(DEPLOYMENT_RESTARTS.c.deployment == deployment)
            )
        ).first()
    return _restart_of(row) if row is not None else DeploymentRestart()


async def open_incident(engine: AsyncEngine, agent_name: str) -> Incident | None:
    """The agent's open incident, as the machine sees it (read without a lock)."""
    async with engine.connect() as connection:
        row = (await connection.execute(select(INCIDENTS).where(INCIDENTS.c.open_key == agent_name))).first()
    return incident_of(row) if row is not None else None
