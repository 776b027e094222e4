"""Rooms that concurrent jobs read are read together, in one SELECT, each caller getting its own room
(`workers.store.reads`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.events import parse
from tests.support.helpers import body, person
from workers.core.room import Policy
from workers.store.writer import load_room, record_event

POLICY = Policy("notetaker")


async def join(engine: AsyncEngine, room: str, who: str, at: int) -> None:
    raw = body(
        "participant_joined",
        id=f"EV_{room}_{who}",
        created_at=at,
        room=room,
        sid=f"RM_{room}",
        participant=person(who),
    )
    await record_event(engine, parse(raw), received_at=float(at), rules=POLICY)


def count_room_reads(engine: AsyncEngine) -> list[str]:
    statements: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "rooms.state" in statement:
            statements.append(statement)

    return statements


async def test_concurrent_reads_share_one_select(engine: AsyncEngine) -> None:
    rooms = [f"r{i}" for i in range(20)]
    for i, room in enumerate(rooms):
        await join(engine, room, "alice", 100 + i)
    reads = count_room_reads(engine)
    asked = [f"RM_{room}" for room in rooms] * 2 + ["RM_unknown"]
    found = await asyncio.gather(*(load_room(engine, sid) for sid in asked))
    assert [room.sid if room else None for room in found] == [*asked[:-1], None]
    assert all(room is None or [p.identity for p in room.people] == ["alice"] for room in found)
    assert len(reads) == 1


async def test_a_failed_read_fails_every_caller_in_it(engine: AsyncEngine) -> None:
    await join(engine, "gone", "alice", 100)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _fail(*_: Any) -> None:
        raise RuntimeError("database went away")

    results = await asyncio.gather(*(load_room(engine, "RM_gone") for _ in range(3)), return_exceptions=True)
    assert [str(r) for r in results] == ["database went away"] * 3
    event.remove(engine.sync_engine, "before_cursor_execute", _fail)
    room = await load_room(engine, "RM_gone")
    assert room is not None  # the next read is a fresh one
