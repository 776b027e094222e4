"""Recording events into rooms on a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.support.events import parse
from tests.support.helpers import agent, body, fixture, person
from tests.support.settings import make_settings
from tests.support.timelines import logged
from workers.core.events import Event
from workers.core.room import Phase, Policy
from workers.store.engine import make_engine
from workers.store.models import EventRow, RoomRow
from workers.store.queries import find_room
from workers.store.writer import Outcome, record_event

POLICY = Policy("notetaker")


def joined(who: dict[str, object], at: int, id: str) -> Event:
    return parse(body("participant_joined", id=id, created_at=at, participant=who))


def left(who: dict[str, object], at: int, id: str) -> Event:
    return parse(body("participant_left", id=id, created_at=at, participant=who))


async def outcome(engine: AsyncEngine, event: Event, received_at: float) -> Outcome:
    return (await record_event(engine, event, received_at=received_at, rules=POLICY)).outcome


async def count(engine: AsyncEngine, model: type) -> int:
    async with AsyncSession(engine) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_recorded_fixtures_build_the_room_and_its_timeline(engine: AsyncEngine) -> None:
    for name in ("room_started", "participant_joined_standard"):
        assert await outcome(engine, parse(fixture(name)), 1.0) == Outcome.APPLIED
    room, timeline = logged(await find_room(engine, "call-42"))
    assert room is not None and room.sid == "RM_x7Qk2mP9aZbC"
    assert room.summary().phase is Phase.WAITING
    assert [p.identity for p in room.people] == ["user-123"]
    assert [e.name for e in timeline] == ["room_started", "participant_joined", "ScheduleDeadline"]


async def test_duplicate_event_is_stored_once_and_changes_nothing(engine: AsyncEngine) -> None:
    event = joined(person("alice"), 10, "EV_dup")
    assert (await record_event(engine, event, received_at=1.0, rules=POLICY)).outcome == Outcome.APPLIED
    logged = await count(engine, EventRow)
    assert logged == 2  # the event, and the join deadline it set
    assert (await record_event(engine, event, received_at=2.0, rules=POLICY)).outcome == Outcome.DUPLICATE
    assert await count(engine, EventRow) == logged
    async with AsyncSession(engine) as session:
        row = await session.get(RoomRow, "RM_test")
        assert row is not None and row.version == 1


async def test_late_older_event_is_applied_in_livekit_order(engine: AsyncEngine) -> None:
    # alice leaves at 20 but that webhook arrives first; her join (at 10) arrives later and must not win.
    assert await outcome(engine, left(person("alice"), 20, "EV_left"), 1.0) == Outcome.APPLIED
    assert await outcome(engine, joined(person("alice"), 10, "EV_join"), 2.0) == Outcome.REFOLDED
    room, timeline = logged(await find_room(engine, "call-42"))
    assert room is not None and room.summary().phase is Phase.IDLE and room.people == ()
    assert [e.name for e in timeline] == ["participant_joined", "participant_left"]


async def test_concurrent_writers_on_one_room_lose_nothing(database_url: str) -> None:
    # Two engines stand for two worker processes; 40 people join one room at once.
    url = make_settings(database_url=database_url).database_url
    engines = [make_engine(url), make_engine(url)]
    try:
        events = [joined(person(f"p{i}"), 100 + i % 3, f"EV_{i}") for i in range(40)]
        outcomes = await asyncio.gather(
            *(
                record_event(engines[i % 2], e, received_at=float(i), rules=POLICY)
                for i, e in enumerate(events)
            )
        )
        assert {r.outcome for r in outcomes} <= {Outcome.APPLIED, Outcome.REFOLDED}
        room, _ = logged(await find_room(engines[0], "call-42"))
        assert room is not None and len(room.people) == 40
        async with AsyncSession(engines[0]) as session:
            row = await session.get(RoomRow, "RM_test")
            assert row is not None and row.version == 40
    finally:
        for e in engines:
            await e.dispose()


async def test_agent_join_is_seen_and_event_without_room_is_logged(engine: AsyncEngine) -> None:
    await record_event(engine, joined(person("alice"), 10, "EV_a"), received_at=1.0, rules=POLICY)
    await record_event(engine, joined(agent("agent-AJ_1"), 14, "EV_b"), received_at=2.0, rules=POLICY)
    room, _ = logged(await find_room(engine, "call-42"))
    shown = room.summary() if room is not None else None
    assert shown is not None and (shown.phase, shown.agent_joined_at) == (Phase.AGENT_PRESENT, 14)
    orphan = parse(json.dumps({"event": "egress_started", "id": "EV_eg", "createdAt": "5"}).encode())
    before = await count(engine, EventRow)
    assert (await record_event(engine, orphan, received_at=3.0, rules=POLICY)).outcome == Outcome.NO_ROOM
    assert await count(engine, EventRow) == before + 1
