"""Incident rows (`workers.store.incidents`, `workers.store.incident_steps`): joining the open incident
in one statement, and only while open; the restart, a lease claimed again only when its caller died;
the cooldown and the claim, a deployment's, so that its agents out at once get one restart; rooms
recovering at once, and rooms that never report their recovery."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.events import parse
from tests.support.helpers import agent, body, person
from workers.core.incident import CLOUD, IncidentPolicy, IncidentState, Report, Restart, Signal
from workers.core.room import Policy
from workers.store import incident_steps, incidents
from workers.store.incident_steps import Applied
from workers.store.models import INCIDENT_ROOMS, INCIDENTS
from workers.store.writer import record_event


async def _rooms(engine: AsyncEngine, incident_id: str) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.scalars(
            select(INCIDENT_ROOMS.c.room_sid).where(INCIDENT_ROOMS.c.incident_id == incident_id)
        )
        return sorted(rows)


async def _waiting(engine: AsyncEngine, *names: str) -> None:
    """Rooms `names` (sid `RM_<name>`) with a person waiting for the notetaker."""
    for name in names:
        who = {"participant": person("alice")}
        raw = body("participant_joined", id=f"EV_{name}", created_at=1, room=name, sid=f"RM_{name}", **who)
        await record_event(engine, parse(raw), received_at=1.0, rules=Policy("notetaker"))


async def test_a_room_joins_the_open_incident_once_and_never_a_resolved_one(engine: AsyncEngine) -> None:
    await _waiting(engine, "a", "b")
    incident_id, opened = await incidents.open_or_join(engine, "notetaker", "3 rooms", [("RM_a", "a")], 1.0)
    assert opened
    assert await incidents.join_open(engine, incident_id, "notetaker", ("RM_b", "b"), 2.0) is True
    assert await incidents.join_open(engine, incident_id, "notetaker", ("RM_b", "b"), 3.0) is False  # in it
    assert await incidents.join_open(engine, incident_id, "other-agent", ("RM_c", "c"), 3.0) is False
    assert await _rooms(engine, incident_id) == ["RM_a", "RM_b"]
    assert await incidents.room_recovered(engine, "notetaker", "RM_a", 4.0) is None  # RM_b still waits
    resolved = await incidents.room_recovered(engine, "notetaker", "RM_b", 4.0)
    assert resolved is not None and resolved.incident.resolved_at == 4.0
    assert await incidents.join_open(engine, incident_id, "notetaker", ("RM_d", "d"), 5.0) is False
    assert await _rooms(engine, incident_id) == ["RM_a", "RM_b"]


CLOUD_ONLY = IncidentPolicy(cloud=True, cooldown=300.0, lease=60.0)
DEPLOYMENT = "cloud:CA_x"


async def _report(
    engine: AsyncEngine, agent: str, signal: Signal, at: float, rooms: list[tuple[str, str]] | None = None
) -> Applied | None:
    report = Report(signal, at, reason="outage", rooms=len(rooms or ()))
    return await incident_steps.report(
        engine, agent, report, CLOUD_ONLY, deployment=DEPLOYMENT, rooms=rooms or []
    )


def _restarts(applied: Applied | None) -> list[Restart]:
    return [d for d in (applied.decisions if applied else ()) if isinstance(d, Restart)]


async def _landed(engine: AsyncEngine, incident_id: str, at: float) -> list[Applied]:
    return await incident_steps.restart_outcome(
        engine, incident_id, CLOUD, True, at, policy_of=lambda _: CLOUD_ONLY, rows_of=lambda _: _no_rows
    )


def _no_rows(incident: object, decisions: object, names: list[str]) -> list[dict[str, object]]:
    return []


async def test_a_leased_restart_is_claimed_again_only_when_its_caller_died_and_never_once_done(
    engine: AsyncEngine,
) -> None:
    opened = await _report(engine, "notetaker", Signal.OUTAGE, 100.0, [("RM_a", "a")])
    assert opened is not None and _restarts(opened) == [Restart((CLOUD,))]
    assert await _report(engine, "notetaker", Signal.SWEPT, 150.0) is None  # its caller is alive
    assert _restarts(await _report(engine, "notetaker", Signal.SWEPT, 161.0)) == [
        Restart((CLOUD,))
    ]  # it died
    assert await _report(engine, "notetaker", Signal.SWEPT, 162.0) is None
    assert [a.incident.state for a in await _landed(engine, opened.incident.id, 170.0)] == [
        IncidentState.RESTARTED
    ]
    assert await _landed(engine, opened.incident.id, 171.0) == []  # the restart has its outcome already
    assert await _report(engine, "notetaker", Signal.SWEPT, 1000.0) is None


async def test_the_cooldown_is_the_deployments_and_spares_a_restarts_own_lease(engine: AsyncEngine) -> None:
    """Within the cooldown of its deployment's restart a new incident shares the restart that landed
    (its rooms re-checked, no second call); its own lease is no other incident's cooldown."""
    first = await _report(engine, "notetaker", Signal.OUTAGE, 100.0, [("RM_a", "a")])
    assert first is not None and _restarts(first)
    assert _restarts(await _report(engine, "notetaker", Signal.SWEPT, 200.0))  # its caller died: again
    await _landed(engine, first.incident.id, 205.0)
    assert await incidents.room_recovered(engine, "notetaker", "RM_a", 210.0) is not None
    second = await _report(engine, "scribe", Signal.OUTAGE, 220.0, [("RM_b", "b")])
    assert second is not None and second.incident.id != first.incident.id
    assert _restarts(second) == [] and second.incident.state is IncidentState.RESTARTED
    assert await incidents.room_recovered(engine, "scribe", "RM_b", 230.0) is not None
    third = await _report(engine, "notetaker", Signal.OUTAGE, 501.0, [("RM_c", "c")])  # 300 s after 200
    assert _restarts(third) == [Restart((CLOUD,))]


async def test_agents_of_one_deployment_out_at_once_claim_one_restart(engine: AsyncEngine) -> None:
    """Incidents of two agents on one deployment, opened at the same moment by concurrent workers:
    exactly one restart is claimed; its outcome moves both incidents."""
    agents = ["notetaker", "demo-agent"] * 4  # four workers each
    opened = await asyncio.gather(
        *(_report(engine, agent, Signal.OUTAGE, 100.0, [(f"RM_{agent}", agent)]) for agent in agents)
    )
    assert sum(len(_restarts(a)) for a in opened) == 1
    claimed = next(a for a in opened if a is not None and _restarts(a))
    moved = await _landed(engine, claimed.incident.id, 101.0)
    assert sorted((a.incident.agent_name, a.incident.state) for a in moved) == [
        ("demo-agent", IncidentState.RESTARTED),
        ("notetaker", IncidentState.RESTARTED),
    ]


async def test_rooms_recovering_at_once_resolve_the_incident_once_without_a_deadlock(
    engine: AsyncEngine,
) -> None:
    """Each recovery marks its own room, then, once none waits, every other room of the incident that
    needs nothing now: at once, on PostgreSQL, two of them used to wait for each other's rows (a
    deadlock, the job failed)."""
    rooms = [(f"RM_r{i}", f"r{i}") for i in range(12)]
    for n, (sid, name) in enumerate(rooms):  # each has its agent now: it needs nothing
        for event, who in (("participant_joined", person("alice")), ("participant_joined", agent("bot"))):
            raw = body(
                event, id=f"EV_{name}_{who['identity']}", created_at=100, room=name, sid=sid, participant=who
            )
            await record_event(engine, parse(raw), received_at=100.0 + n, rules=Policy("notetaker"))
    incident_id, _ = await incidents.open_or_join(engine, "notetaker", "outage", rooms, 100.0)
    outcomes = await asyncio.gather(
        *(incidents.room_recovered(engine, "notetaker", sid, 200.0) for sid, _ in rooms)
    )
    resolved = [o for o in outcomes if o is not None]
    assert len(resolved) == 1 and resolved[0].incident.id == incident_id
    assert resolved[0].incident.resolved_at == 200.0


async def _recovered_at(engine: AsyncEngine, incident_id: str) -> dict[str, float | None]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(INCIDENT_ROOMS.c.room_sid, INCIDENT_ROOMS.c.recovered_at).where(
                INCIDENT_ROOMS.c.incident_id == incident_id
            )
        )
        return {sid: at for sid, at in rows}


async def _agent_came(engine: AsyncEngine, name: str, at: float) -> None:
    raw = body(
        "participant_joined",
        id=f"EV_{name}_bot",
        created_at=int(at),
        room=name,
        sid=f"RM_{name}",
        participant=agent("bot"),
    )
    await record_event(engine, parse(raw), received_at=at, rules=Policy("notetaker"))


async def test_rooms_that_never_report_recovering_neither_hold_the_incident_open_nor_stay_waiting(
    engine: AsyncEngine,
) -> None:
    """b and c got their agent without missing an SLA, so no recovery of theirs is ever reported: the
    incident is resolved at the last reported recovery (d's) all the same, every room recovered by then;
    before, the sweep marks them while d still waits."""
    await _waiting(engine, "a", "b", "c", "d")
    rooms = [(f"RM_{n}", n) for n in "abcd"]
    incident_id, _ = await incidents.open_or_join(engine, "notetaker", "outage", rooms, 100.0)
    await _agent_came(engine, "b", 150.0)
    await _agent_came(engine, "a", 155.0)
    assert await incidents.room_recovered(engine, "notetaker", "RM_a", 160.0) is None  # d waits
    await _agent_came(engine, "c", 165.0)
    await _agent_came(engine, "d", 168.0)
    resolved = await incidents.room_recovered(engine, "notetaker", "RM_d", 170.0)
    assert resolved is not None and resolved.incident.resolved_at == 170.0
    recovered = await _recovered_at(engine, incident_id)
    assert (recovered["RM_a"], recovered["RM_d"]) == (160.0, 170.0)
    assert all(at is not None and at <= 170.0 for at in recovered.values())


async def test_the_sweep_marks_rooms_that_need_nothing_while_another_still_waits(engine: AsyncEngine) -> None:
    await _waiting(engine, "a", "b")
    incident_id, _ = await incidents.open_or_join(
        engine, "notetaker", "outage", [("RM_a", "a"), ("RM_b", "b")], 100.0
    )
    await _agent_came(engine, "b", 150.0)
    assert await incidents.room_recovered(engine, "notetaker", "", 155.0) is None  # a waits
    assert await _recovered_at(engine, incident_id) == {"RM_a": None, "RM_b": 155.0}


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_room_joining_while_the_last_recovery_resolves_the_incident_stays_out_of_it(
    engine: AsyncEngine,
) -> None:
    # PostgreSQL runs the join and the resolution at once (SQLite's one writer takes them in turn): a join
    # that reads the incident's row while the last recovery resolves it waits for that recovery, and
    # then finds the incident closed, so the room's breach counts towards the next outage instead
    await _waiting(engine, "a", "b")
    incident_id, _ = await incidents.open_or_join(engine, "notetaker", "3 rooms", [("RM_a", "a")], 1.0)
    async with engine.connect() as resolving:
        transaction = await resolving.begin()
        await resolving.execute(  # the last recovery, holding the incident's row until it commits
            update(INCIDENTS).where(INCIDENTS.c.id == incident_id).values(open_key=None, resolved_at=2.0)
        )
        joining = asyncio.create_task(
            incidents.join_open(engine, incident_id, "notetaker", ("RM_b", "b"), 2.0)
        )

        async def join_waits() -> bool:
            async with engine.connect() as watching:
                waiting = await watching.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
            return bool(waiting) or joining.done()

        while not await join_waits():
            await asyncio.sleep(0.01)
        await transaction.commit()
    assert await joining is False
    assert await _rooms(engine, incident_id) == ["RM_a"]
