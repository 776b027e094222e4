"""Incident rows (`workers.store.incidents`): joining the open incident in one statement, and only
while open; leased steps, taken again only when their holder died; the restart cooldown; rooms
recovering at once."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.events import parse
from tests.support.helpers import agent, body, person
from workers.core.room import Policy
from workers.store import incidents
from workers.store.incidents import Claim
from workers.store.models import INCIDENT_ROOMS
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
    assert resolved is not None and resolved.resolved_at == 4.0
    assert await incidents.join_open(engine, incident_id, "notetaker", ("RM_d", "d"), 5.0) is False
    assert await _rooms(engine, incident_id) == ["RM_a", "RM_b"]


async def test_a_leased_step_is_taken_again_only_when_its_holder_died_and_never_once_done(
    engine: AsyncEngine,
) -> None:
    incident_id, _ = await incidents.open_or_join(engine, "notetaker", "outage", [("RM_a", "a")], 100.0)
    step, lease = "restart_claimed_at", 60.0
    assert await incidents.claim(engine, incident_id, step, 100.0, lease=lease) is Claim.FIRST
    assert await incidents.claim(engine, incident_id, step, 150.0, lease=lease) is Claim.LATER  # holder alive
    assert await incidents.unfinished(engine, "notetaker", 150.0, lease) == []
    assert await incidents.unfinished(engine, "notetaker", 161.0, lease) == [(incident_id, step)]
    assert await incidents.claim(engine, incident_id, step, 161.0, lease=lease) is Claim.AGAIN  # it died
    assert await incidents.claim(engine, incident_id, step, 162.0, lease=lease) is Claim.LATER
    assert await incidents.finish(engine, incident_id, step, 170.0) is True
    assert await incidents.finish(engine, incident_id, step, 171.0) is False
    assert await incidents.claim(engine, incident_id, step, 1000.0, lease=lease) is Claim.TAKEN
    assert await incidents.unfinished(engine, "notetaker", 1000.0, lease) == []


async def test_the_restart_cooldown_refuses_a_new_incident_but_not_its_own_lease(engine: AsyncEngine) -> None:
    step, lease, cooldown = "restart_claimed_at", 60.0, 300.0
    first, _ = await incidents.open_or_join(engine, "notetaker", "outage", [("RM_a", "a")], 100.0)
    assert await incidents.claim(engine, first, step, 100.0, cooldown=cooldown, lease=lease) is Claim.FIRST
    assert await incidents.claim(engine, first, step, 200.0, cooldown=cooldown, lease=lease) is Claim.AGAIN
    assert await incidents.room_recovered(engine, "notetaker", "RM_a", 210.0) is not None
    second, opened = await incidents.open_or_join(engine, "notetaker", "again", [("RM_b", "b")], 220.0)
    assert opened and second != first
    assert await incidents.claim(engine, second, step, 220.0, cooldown=cooldown, lease=lease) is Claim.LATER
    assert await incidents.unfinished(engine, "notetaker", 400.0, lease) == []  # refused: nothing to resume
    assert await incidents.claim(engine, second, step, 501.0, cooldown=cooldown, lease=lease) is Claim.FIRST


async def test_rooms_recovering_at_once_resolve_the_incident_once_without_a_deadlock(
    engine: AsyncEngine,
) -> None:
    """Each recovery marks its own room, then every other room of the incident that needs nothing now:
    at once, on PostgreSQL, two of them used to wait for each other's rows (a deadlock, the job failed)."""
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
    assert len(resolved) == 1 and resolved[0].id == incident_id and resolved[0].resolved_at == 200.0
