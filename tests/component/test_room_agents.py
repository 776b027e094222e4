"""A row per expected agent (`room_agents`), on SQLite and PostgreSQL: the rows follow the room as the
writer saves it (an agent learned, its phase moved, an agent no longer expected, the room closed);
escalation asks them for one agent's rooms only (a restart's fresh start, an incident settling); and
migration 0007 carries a database of the previous schema over."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.webhooks import caller
from tests.support.events import parse
from tests.support.helpers import agent, body, person
from tests.support.postgres import POSTGRES_ADMIN_URL
from tests.support.settings import make_settings
from workers.core.events import Event
from workers.core.machine import transition
from workers.core.order import newest_after
from workers.core.plain import as_dict
from workers.core.room import AgentView, Phase, Policy, Recovery, Room
from workers.core.rules import Rule, Rules
from workers.core.stored import to_dict
from workers.migrate import upgrade
from workers.store import incidents
from workers.store.engine import make_engine
from workers.store.group import record_group
from workers.store.models import ROOM_AGENTS, ROOMS
from workers.store.room_rows import room_values
from workers.store.writer import record_event

RULES = Rules.of(
    (
        Rule(1, sip=True, agents=("receptionist",)),
        Rule(2, room="support-*", agents=("assistant", "notetaker")),
        Rule(3, room="assist-*", agents=("assistant",)),
        Rule(4, room="notes-*", agents=("notetaker",)),
    ),
    Policy(),
)
Rows = dict[str, tuple[Phase, Recovery]]


def _event(kind: str, room: str, n: int, **fields: Any) -> Event:
    return parse(body(kind, id=f"EV_{room}_{n}", created_at=100 + n, room=room, sid=f"RM_{room}", **fields))


async def _record(engine: AsyncEngine, *events: Event) -> None:
    for event in events:
        await record_event(engine, event, received_at=float(event.created_at), rules=RULES)


async def _rows(engine: AsyncEngine, room: str) -> Rows:
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.select(ROOM_AGENTS.c.agent, ROOM_AGENTS.c.phase, ROOM_AGENTS.c.recovery).where(
                ROOM_AGENTS.c.room_sid == f"RM_{room}"
            )
        )
        return {name: (phase, recovery) for name, phase, recovery in found}


WAITS = (Phase.WAITING, Recovery.NONE)


async def test_the_rows_follow_the_room_agent_by_agent(engine: AsyncEngine) -> None:
    await _record(engine, _event("participant_joined", "support-1", 0, participant=person("alice")))
    assert await _rows(engine, "support-1") == {"assistant": WAITS, "notetaker": WAITS}

    await _record(engine, _event("participant_joined", "support-1", 1, participant=agent("a-1", "assistant")))
    assert await _rows(engine, "support-1") == {
        "assistant": (Phase.AGENT_PRESENT, Recovery.NONE),
        "notetaker": WAITS,
    }

    # A phone caller: the room now matches the SIP rule, which expects the receptionist alone.
    number = "+15550100123"
    await _record(engine, _event("participant_joined", "support-1", 2, participant=caller("sip-1", number)))
    assert await _rows(engine, "support-1") == {"receptionist": WAITS}

    await _record(engine, _event("room_finished", "support-1", 3))
    assert await _rows(engine, "support-1") == {"receptionist": (Phase.CLOSED, Recovery.NONE)}


async def test_rooms_recorded_in_one_group_each_get_their_own_rows(engine: AsyncEngine) -> None:
    rooms = ["assist-1", "notes-1", "support-1"]
    batches = [[(_event("participant_joined", room, 0, participant=person("alice")), 1.0)] for room in rooms]
    await record_group(engine, batches, rules=RULES)
    assert [await _rows(engine, room) for room in rooms] == [
        {"assistant": WAITS},
        {"notetaker": WAITS},
        {"assistant": WAITS, "notetaker": WAITS},
    ]


async def test_a_restart_and_an_incident_see_only_their_own_agents_rooms(engine: AsyncEngine) -> None:
    for room in ("assist-1", "notes-1", "support-1"):
        await _record(engine, _event("participant_joined", room, 0, participant=person("alice")))
    await _record(engine, _event("participant_joined", "support-1", 1, participant=agent("a-1", "assistant")))

    assert await incidents.waiting_rooms(engine, "assistant") == [("RM_assist-1", "assist-1")]
    assert await incidents.waiting_rooms(engine, "notetaker") == [
        ("RM_notes-1", "notes-1"),
        ("RM_support-1", "support-1"),
    ]

    # The assistant's incident: support-1 has its assistant (its notetaker still missing, which is
    # the notetaker's incident's business); once assist-1 has one too, the incident is resolved.
    rooms = [("RM_assist-1", "assist-1"), ("RM_support-1", "support-1")]
    incident_id, _ = await incidents.open_or_join(engine, "assistant", "outage", rooms, 200.0)
    notes_id, _ = await incidents.open_or_join(engine, "notetaker", "outage", [("RM_support-1", "s")], 200.0)
    assert await incidents.room_recovered(engine, "assistant", "", 201.0) is None  # assist-1 waits
    await _record(engine, _event("participant_joined", "assist-1", 2, participant=agent("a-2", "assistant")))
    resolved = await incidents.room_recovered(engine, "assistant", "", 202.0)
    assert resolved is not None and resolved.incident.id == incident_id
    assert await incidents.room_recovered(engine, "notetaker", "", 202.0) is None  # support-1 still waits
    assert (await incidents.get_incident(engine, notes_id)).resolved_at is None  # type: ignore[union-attr]


async def _admin(statement: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture
async def unmigrated(database_url: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database without any schema, on the server `database_url` is on."""
    name = f"warden_migration_{uuid.uuid4().hex[:10]}"
    on_postgres = not database_url.startswith("sqlite")
    if on_postgres:
        await _admin(f'CREATE DATABASE "{name}"')
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(make_settings(database_url=url).database_url)
    try:
        yield engine
    finally:
        await engine.dispose()
        if on_postgres:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _old_row(room: Room, events: list[Event], *, before_views: bool = False) -> dict[str, Any]:
    """The `rooms` row the writer of revision 0006 wrote for `room`: the whole room's fields beside a
    view per expected agent, each the whole room as that agent saw it (`before_views`: as Warden wrote
    rooms before they had a view per expected agent, one room of one agent)."""
    newest = max(newest_after(-1, e) for e in events)
    values = {**room_values(room, newest, 100.0), "version": 1, "first_seen_at": 100.0}
    whole = {k: v for k, v in to_dict(room).items() if k not in ("watch", "views")}

    def seen_by(view: AgentView) -> dict[str, Any]:
        return {**whole, **as_dict(view)}

    if before_views:
        values["state"] = {k: v for k, v in seen_by(room.summary()).items() if k not in ("agent", "sources")}
    else:
        views = [seen_by(v) for v in room.views]
        values["state"] = {**seen_by(room.watch or AgentView()), "views": views, "learned": room.learned}
    return values


async def test_the_migration_carries_open_rooms_over(unmigrated: AsyncEngine) -> None:
    await upgrade(unmigrated, revision="0006")
    old: list[dict[str, Any]] = []
    for room, people, before_views in (
        ("support-1", [person("alice"), agent("a-1", "assistant")], False),
        ("notes-1", [person("bob")], True),
        ("support-2", [person("carol")], False),
    ):
        events = [_event("participant_joined", room, n, participant=p) for n, p in enumerate(people)]
        if room == "support-2":
            events.append(_event("room_finished", room, len(events)))
        folded = Room(f"RM_{room}", room)
        for event in events:
            folded = transition(folded, event, now=float(event.created_at), rules=RULES).room
        old.append(_old_row(folded, events, before_views=before_views))
    async with unmigrated.begin() as connection:
        await connection.execute(sa.insert(ROOMS), old)

    await upgrade(unmigrated, legacy_agent="notetaker")  # WARDEN_AGENT_NAME, at the release step

    assert await _rows(unmigrated, "support-1") == {
        "assistant": (Phase.AGENT_PRESENT, Recovery.NONE),
        "notetaker": WAITS,
    }
    assert await _rows(unmigrated, "notes-1") == {"notetaker": WAITS}  # one room of one agent, as it was
    assert await _rows(unmigrated, "support-2") == {}  # closed: nobody waits in it
    assert await incidents.waiting_rooms(unmigrated, "notetaker") == [
        ("RM_notes-1", "notes-1"),
        ("RM_support-1", "support-1"),
    ]
    # The writer goes on from the carried-over rows.
    await _record(
        unmigrated, _event("participant_joined", "support-1", 5, participant=agent("n-1", "notetaker"))
    )
    assert await _rows(unmigrated, "support-1") == {
        "assistant": (Phase.AGENT_PRESENT, Recovery.NONE),
        "notetaker": (Phase.AGENT_PRESENT, Recovery.NONE),
    }
