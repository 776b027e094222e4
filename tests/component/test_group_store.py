"""Group commit (`workers.store.group`): many rooms' events recorded in one transaction must give each
caller, and the database, exactly what recording them one by one gives. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.support.settings import make_settings
from workers.core.events import Event, EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.room import Policy, Room
from workers.core.stored import from_dict, to_dict
from workers.store import room_agents
from workers.store.engine import make_engine
from workers.store.group import GroupCommit, record_group
from workers.store.models import EVENTS, ROOM_AGENTS, ROOMS
from workers.store.writer import Outcome, Recorded, record_events

POLICY = Policy("notetaker")
RUNS = itertools.count()

# One step: (room, who, joins?, created_at offset, re-send an earlier event instead?)
STEP = st.tuples(
    st.integers(0, 3),
    st.sampled_from(["alice", "bob", "agent-x"]),
    st.booleans(),
    st.integers(0, 6),
    st.booleans(),
)


Step = tuple[int, str, bool, int, bool]
Rounds = list[list[list[tuple[Event, float]]]]


def _event(prefix: str, n: int, step: Step) -> Event:
    room, who, joins, at, _ = step
    kind = EventKind.PARTICIPANT_JOINED if joins else EventKind.PARTICIPANT_LEFT
    ptype = ParticipantKind.AGENT if who.startswith("agent") else ParticipantKind.STANDARD
    person = Participant(who, f"PA_{who}", int(ptype))
    return Event(f"{prefix}EV_{n}", kind, str(kind), 1000 + at, f"{prefix}RM_{room}", f"room-{room}", person)


def _rounds(
    prefix: str, steps: list[tuple[int, str, bool, int, bool]]
) -> list[list[list[tuple[Event, float]]]]:
    """The steps as rounds of concurrent batches, one batch per room per round; a re-send repeats the
    room's previous event (LiveKit's retry)."""
    rounds: Rounds = [[]]
    last: dict[int, Event] = {}
    for n, step in enumerate(steps):
        event = _event(prefix, n, step)
        if step[4] and step[0] in last:
            event = last[step[0]]
        last[step[0]] = event
        if any(batch[0][0].room_sid == event.room_sid for batch in rounds[-1]):
            rounds.append([])
        rounds[-1].append([(event, 10.0 + n)])
    return rounds


def _plain(recorded: Recorded, prefix: str) -> tuple[Outcome, object, object, tuple[object, ...]]:
    """A result with the prefix taken out of the room's sid, for comparing the two runs."""

    def room(r: Room | None) -> object:
        return to_dict(replace(r, sid=r.sid.removeprefix(prefix))) if r is not None else None

    return recorded.outcome, room(recorded.room), room(recorded.before), recorded.actions


async def _table(engine: AsyncEngine, prefix: str) -> tuple[list[object], list[object], list[object]]:
    async with engine.connect() as connection:
        rooms = await connection.execute(
            select(ROOMS.c.sid, ROOMS.c.phase, ROOMS.c.version, ROOMS.c.deadline_at, ROOMS.c.updated_at)
            .where(ROOMS.c.sid.startswith(prefix))
            .order_by(ROOMS.c.sid)
        )
        events = await connection.execute(
            select(EVENTS.c.event_id, EVENTS.c.kind, EVENTS.c.name, EVENTS.c.received_at)
            .where(EVENTS.c.room_sid.startswith(prefix))
            .order_by(EVENTS.c.event_id)
        )
        agents = await connection.execute(
            select(ROOM_AGENTS).where(ROOM_AGENTS.c.room_sid.startswith(prefix)).order_by(*ROOM_AGENTS.c)
        )
        strip = len(prefix)
        return (
            [(r[0][strip:], *r[1:]) for r in rooms],
            [(e[0][strip:], *e[1:]) for e in events],
            [(a[0][strip:], *a[1:]) for a in agents],
        )


async def _rows_follow_rooms(engine: AsyncEngine, prefix: str) -> None:
    """Each room's expected agents' rows are the ones its stored state says (`room_agents.rows`)."""
    async with engine.connect() as connection:
        states = await connection.scalars(select(ROOMS.c.state).where(ROOMS.c.sid.startswith(prefix)))
        said = sorted(tuple(r.values()) for state in states for r in room_agents.rows(from_dict(state)))
        stored = await connection.execute(
            select(ROOM_AGENTS).where(ROOM_AGENTS.c.room_sid.startswith(prefix)).order_by(*ROOM_AGENTS.c)
        )
        assert [tuple(row) for row in stored] == said


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=24))
async def test_group_commit_records_what_one_by_one_records(engine: AsyncEngine, steps: list[object]) -> None:
    run = next(RUNS)  # Hypothesis may replay an example: each run gets rooms and ids of its own
    one, many = f"one{run}_", f"grp{run}_"
    sequential, grouped = [], []
    for batches in _rounds(one, steps):  # type: ignore[arg-type]
        for batch in batches:
            sequential.append(_plain(await record_events(engine, batch, rules=POLICY), one))
    for batches in _rounds(many, steps):  # type: ignore[arg-type]
        grouped.extend(_plain(r, many) for r in await record_group(engine, batches, rules=POLICY))
    assert grouped == sequential
    assert await _table(engine, many) == await _table(engine, one)
    await _rows_follow_rooms(engine, many)  # late events re-folded and duplicates included


async def test_concurrent_jobs_share_transactions_and_each_gets_its_own_answer(engine: AsyncEngine) -> None:
    committer = GroupCommit(engine, POLICY)
    steps = [(room, "alice", True, 0, False) for room in range(4)]
    batches = [
        [(replace(e, room_sid=f"RM_c{i}", id=f"EV_c{i}"), 1.0)]
        for i, e in enumerate(_event("", n, s) for n, s in enumerate(steps * 50))
    ]
    results = await asyncio.gather(*(committer.record(b) for b in batches))
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 200
    assert [r.room.sid for r in results if r.room] == [f"RM_c{i}" for i in range(200)]
    again = await asyncio.gather(*(committer.record(b) for b in batches[:10]))
    assert {r.outcome for r in again} == {Outcome.DUPLICATE}
    tables = await _table(engine, "RM_c")
    assert len(tables[0]) == 200 and all(version == 1 for _, _, version, _, _ in tables[0])
    assert [(sid, agent) for sid, agent, *_ in tables[2]] == [
        (str(i), "notetaker") for i in sorted(range(200), key=str)
    ]


async def test_two_workers_creating_one_room_at_once_both_land(database_url: str) -> None:
    # Two processes' groups each think the room is new; one insert fails, its group is re-recorded
    # one room at a time, and the room ends with both people.
    url = make_settings(database_url=database_url).database_url
    engines = [make_engine(url), make_engine(url)]
    try:
        people = [_event("", i, (0, who, True, i, False)) for i, who in enumerate(["alice", "bob"])]
        others = [[(_event("x", 10 + i, (i + 1, "alice", True, 0, False)), 1.0)] for i in range(4)]
        groups = [[[(people[0], 1.0)], *others[:2]], [[(people[1], 1.0)], *others[2:]]]
        results = await asyncio.gather(
            *(record_group(e, g, rules=POLICY) for e, g in zip(engines, groups, strict=True))
        )
        # Alice's join (second 1000) is refolded if Bob's group (second 1001) committed first.
        assert results[0][0].outcome in (Outcome.APPLIED, Outcome.REFOLDED)
        assert [r.outcome for r in results[0][1:] + results[1]] == [Outcome.APPLIED] * 5
        async with engines[0].connect() as connection:
            row = (await connection.execute(select(ROOMS).where(ROOMS.c.sid == "RM_0"))).one()
        assert row.version == 2 and {p["identity"] for p in row.state["people"]} == {"alice", "bob"}
    finally:
        for e in engines:
            await e.dispose()


async def test_one_rooms_failure_is_that_rooms_alone(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug that raises for one room's event must fail that room's job, not the others in its group.
    from workers.store import folding as store

    real = store.machine.transition  # the fold of the one writer

    def poisoned(room: Room, event: Event, **kwargs: object) -> object:
        if room.sid == "RM_poison":
            raise ValueError("a bug in the state machine")
        return real(room, event, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.machine, "transition", poisoned)
    committer = GroupCommit(engine, POLICY)
    steps = [(i, "alice", True, 0, False) for i in range(3)]
    batches = [
        [(replace(_event("", n, s), room_sid=sid), 1.0)]
        for n, (s, sid) in enumerate(zip(steps, ["RM_p1", "RM_poison", "RM_p2"], strict=True))
    ]
    results = await asyncio.gather(*(committer.record(b) for b in batches), return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert [r.outcome for r in (results[0], results[2])] == [Outcome.APPLIED, Outcome.APPLIED]  # type: ignore[union-attr]
    tables = await _table(engine, "RM_p")
    assert [sid for sid, *_ in tables[0]] == ["1", "2"]  # the poisoned room was not stored


async def test_a_room_changed_since_it_was_read_is_recorded_again(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The version check: a writer that got past the row lock (simulated here, in the group's own
    # transaction) bumps the version after the group read it; the group's write must be refused and
    # the room recorded again from what is stored, not written over it.
    from workers.store import folding, writer

    first = _event("", 0, (0, "alice", True, 0, False))
    assert (await writer.record_events(engine, [(first, 1.0)], rules=POLICY)).outcome == Outcome.APPLIED
    real, folds = folding.fold, []

    async def interloper(connection: AsyncConnection, sid: str, *args: object) -> Recorded:
        folds.append(sid)
        if len(folds) == 1:
            await connection.execute(
                update(ROOMS).where(ROOMS.c.sid == sid).values(version=ROOMS.c.version + 1)
            )
        return await real(connection, sid, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(folding, "fold", interloper)
    second = _event("", 1, (0, "bob", True, 1, False))
    (recorded,) = await record_group(engine, [[(second, 2.0)]], rules=POLICY)
    assert isinstance(recorded, Recorded) and recorded.outcome == Outcome.APPLIED
    assert folds == ["RM_0", "RM_0"]  # refused once, then recorded again
    async with engine.connect() as connection:
        row = (await connection.execute(select(ROOMS).where(ROOMS.c.sid == "RM_0"))).one()
    assert row.version == 2 and {p["identity"] for p in row.state["people"]} == {"alice", "bob"}


async def test_a_heartbeat_grouped_with_its_rooms_webhook_records_what_one_by_one_records(
    engine: AsyncEngine,
) -> None:
    # A heartbeat knows only its room's name; in one group with a webhook of the same room (found by
    # sid), each is folded once, the heartbeat first, as recording them one by one does. The heartbeat
    # (one of Warden's own events) is never late: it is folded on top, before the webhook.
    def batches(prefix: str) -> list[list[tuple[Event, float]]]:
        name = f"{prefix}room-0"
        beat = internal(EventKind.HEARTBEAT, f"{prefix}hb", "", name, Fact(at=1000.5), Participant("agent-x"))
        lost = replace(beat, id=f"{prefix}hb-lost", room_name=f"{prefix}no-such-room")
        return [[(beat, 3.0)], [(_event(prefix, 2, (0, "bob", True, 2, False)), 3.0)], [(lost, 3.0)]]

    def plain(recorded: Recorded | Exception, prefix: str) -> tuple[Outcome, object, object, object]:
        assert isinstance(recorded, Recorded)
        room, before = (
            replace(r, name=r.name.removeprefix(prefix)) if r else r for r in (recorded.room, recorded.before)
        )
        return _plain(replace(recorded, room=room, before=before), prefix)

    got = {}
    for prefix in ("one_hb_", "grp_hb_"):
        first = replace(_event(prefix, 1, (0, "alice", True, 1, False)), room_name=f"{prefix}room-0")
        await record_events(engine, [(first, 1.0)], rules=POLICY)
        if prefix == "one_hb_":
            results = [await record_events(engine, b, rules=POLICY) for b in batches(prefix)]
        else:
            results = await record_group(engine, batches(prefix), rules=POLICY)
        got[prefix] = [plain(r, prefix) for r in results]
    assert [outcome for outcome, *_ in got["grp_hb_"]] == [Outcome.APPLIED, Outcome.APPLIED, Outcome.NO_ROOM]
    assert got["grp_hb_"] == got["one_hb_"]
    assert await _table(engine, "grp_hb_") == await _table(engine, "one_hb_")


async def test_a_late_webhook_grouped_with_later_batches_of_its_room_counts_each_person_once(
    engine: AsyncEngine,
) -> None:
    """Two batches of one room in one group, the first a late webhook (re-folded from the log), the
    second a join of someone beyond the people listed: the join is folded once, as one by one, not once
    in the re-fold (it is in the log already, inserted with the group) and again on top."""
    capped = Policy("notetaker", people_listed=1)

    def join(prefix: str, n: int, who: str, at: int) -> list[tuple[Event, float]]:
        return [(_event(prefix, n, (0, who, True, at, False)), float(at))]

    rooms = {}
    for prefix in ("one_late_", "grp_late_"):
        await record_events(engine, join(prefix, 1, "alice", 4), rules=capped)
        late, later = join(prefix, 2, "bob", 2), join(prefix, 3, "carol", 5)  # bob's is of an earlier second
        if prefix == "one_late_":
            results = [await record_events(engine, b, rules=capped) for b in (late, later)]
        else:
            results = list(await record_group(engine, [late, later], rules=capped))
        room = results[-1].room if isinstance(results[-1], Recorded) else None
        assert room is not None
        rooms[prefix] = (len(room.people), room.people_unlisted)
    assert rooms["grp_late_"] == rooms["one_late_"] == (1, 2)
