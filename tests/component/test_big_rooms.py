"""Big rooms on a real database (SQLite file and PostgreSQL): a storm of joins costs work linear in its
size, Warden's own events make no webhook late, and the timeline lists events in the order they apply
(issue 24, issue 23's ordering)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.cli import run_cli
from tests.support.events import parse
from tests.support.helpers import agent, body, person
from tests.support.settings import make_settings
from tests.support.timelines import logged
from workers.core import machine
from workers.core.events import Event, EventKind, Fact, Participant, internal
from workers.core.room import AgentView, Phase, Policy, Room
from workers.core.rules import Rules
from workers.queue import enqueue
from workers.queue.enqueue import Enqueuer
from workers.queue.jobs import queue_webhook, webhook_job_id
from workers.settings import Settings
from workers.store import checkpoints, group, retention
from workers.store.group import GroupCommit
from workers.store.models import EVENTS, ROOM_CHECKPOINTS
from workers.store.queries import find_room
from workers.store.writer import Outcome, load_room, record_event, record_events

POLICY = Policy("notetaker", people_listed=50)
QUEUE = "warden:queue"
RUNS = itertools.count()
SID, NAME = "RM_test", "call-42"


def joined(who: dict[str, object], at: int, id: str) -> Event:
    return parse(body("participant_joined", id=id, created_at=at, participant=who))


def unnumbered(room: Room) -> tuple[AgentView, ...]:
    """The room's parts without their deadlines' numbers: a re-fold renumbers a deadline whose number it
    cannot keep (`machine.renumbered`: no number names two deadlines), which a bare fold does not."""
    return tuple(
        replace(v, deadline=replace(v.deadline, attempt=0) if v.deadline is not None else None)
        for v in room.views
    )


@pytest.fixture
def transitions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times the machine's `transition` ran (the writer's steps and its re-folds alike)."""
    calls = [0]
    real = machine.transition

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(machine, "transition", counted)
    yield calls


async def test_a_storm_of_joins_after_wardens_own_event_costs_linear_work(
    engine: AsyncEngine, transitions: list[int]
) -> None:
    """The issue's storm: once one of Warden's own events (a later wall-clock second) was recorded, every
    join of LiveKit's earlier second was "late" and re-folded the whole log. Now each is applied in
    place: one step per event."""
    await record_event(engine, joined(person("first"), 100, "EV_first"), received_at=100.0, rules=POLICY)
    heard = internal(
        EventKind.HEARTBEAT, "heartbeat:x", SID, NAME, Fact(at=130.0), participant=Participant("nobody")
    )
    assert (await record_event(engine, heard, received_at=130.0, rules=POLICY)).outcome is Outcome.APPLIED
    storm = 200
    before = transitions[0]
    for i in range(storm):
        event = joined(person(f"p{i}"), 100, f"EV_{i}")
        recorded = await record_event(engine, event, received_at=130.0 + i / 1000, rules=POLICY)
        assert recorded.outcome is Outcome.APPLIED, i
    assert transitions[0] - before == storm
    room, _ = logged(await find_room(engine, NAME))
    assert room is not None and (len(room.people), room.people_unlisted) == (50, storm + 1 - 50)


async def test_a_webhook_of_an_earlier_second_is_still_late_and_lands_in_livekit_order(
    engine: AsyncEngine,
) -> None:
    """A genuinely reordered delivery (alice's leave of second 20 before her join of second 10), with
    one of Warden's own events between them: the join is folded in before the leave."""
    left = parse(body("participant_left", id="EV_left", created_at=20, participant=person("alice")))
    assert (await record_event(engine, left, received_at=20.0, rules=POLICY)).outcome is Outcome.APPLIED
    heard = internal(
        EventKind.HEARTBEAT, "heartbeat:y", SID, NAME, Fact(at=25.0), participant=Participant("x")
    )
    await record_event(engine, heard, received_at=25.0, rules=POLICY)
    late = await record_event(engine, joined(person("alice"), 10, "EV_join"), received_at=26.0, rules=POLICY)
    assert late.outcome is Outcome.REFOLDED
    assert late.room is not None and late.room.people == () and late.room.summary().phase is Phase.IDLE
    _, timeline = logged(await find_room(engine, NAME))
    assert [e.name for e in timeline if e.kind != "action"] == [
        "participant_joined",
        "participant_left",
        "heartbeat",
    ]


async def test_the_timeline_lists_a_redispatch_before_the_agent_it_brought(engine: AsyncEngine) -> None:
    """Warden re-dispatches at 12.9 s by its clock; the agent joins in LiveKit's second 12. The
    timeline (and the fold) list the dispatch first: it sits after what it was decided on."""
    await record_event(engine, joined(person("alice"), 10, "EV_alice"), received_at=10.1, rules=POLICY)
    dispatched = internal(EventKind.AGENT_DISPATCHED, "agent_dispatched:1", SID, NAME, Fact(1, 12.9))
    arrived = joined(agent("agent-1", "notetaker"), 12, "EV_agent")
    await record_events(engine, [(dispatched, 12.9)], rules=POLICY)
    recorded = await record_event(engine, arrived, received_at=13.0, rules=POLICY)
    assert recorded.outcome is Outcome.APPLIED
    _, timeline = logged(await find_room(engine, NAME))
    names = [e.name for e in timeline if e.kind != "action"]
    assert names == ["participant_joined", "agent_dispatched", "participant_joined"]
    assert [e.event_id for e in timeline if e.kind != "action"][-1] == "EV_agent"


async def test_a_rooms_storm_is_recorded_in_few_groups_beside_the_other_rooms(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 jobs of one room and one of another, all waiting at once: the storm is recorded in a few
    transactions (a room gives a group at most `ROOM_BATCHES` batches, in order), the other room's
    event in the first of them, and the room ends as recording them one by one leaves it."""
    groups: list[list[str]] = []
    real = group.record_in

    async def counted(connection: Any, batches: Any, rules: Any) -> Any:
        groups.append([b[0][0].room_sid for b in batches])
        return await real(connection, batches, rules)

    monkeypatch.setattr(group, "record_in", counted)
    committer = GroupCommit(engine, POLICY)
    storm = [[(joined(person(f"p{i}"), 100 + i // 100, f"EV_{i}"), 100.0 + i / 100)] for i in range(300)]
    other = [
        (parse(body("room_started", id="EV_other", created_at=100, sid="RM_other", room="other")), 100.0)
    ]
    results = await asyncio.gather(*(committer.record(b) for b in [*storm, other]))
    assert {r.outcome for r in results} == {Outcome.APPLIED}
    assert len(groups) <= 4 and "RM_other" in groups[0], [len(g) for g in groups]
    big = results[len(storm) - 1].room
    assert big is not None and len(big.people) + big.people_unlisted == 300
    assert [r.room.people_unlisted + len(r.room.people) for r in results[:300] if r.room] == list(
        range(1, 301)
    )


def test_a_storm_is_spaced_in_the_queue_so_another_rooms_event_goes_before_its_tail(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 webhooks of one room queued, then one of another room: spaced a millisecond apart in score
    (`WARDEN_ROOM_EVENTS_PER_SECOND=1000`), the storm's tail is due after the other room's event, which
    ARQ's poll (in score order) then takes among the first; the storm keeps its order. All within one
    millisecond of the clock ARQ scores by, as in a storm that arrives at once: on a loaded machine the
    1,000 enqueues took over half a second of the real clock, which scored the other event past half the
    storm (a clean-clone run read 845)."""
    monkeypatch.setattr(enqueue, "timestamp_ms", lambda: 1_800_000_000_000)

    async def scenario() -> list[str]:
        redis = ArqRedis.from_url(redis_url)
        try:
            enqueuer = Enqueuer(redis, QUEUE, room_spacing_ms=1.0)
            storm = [{"id": f"EV_{i}", "room_sid": "RM_big", "room_name": "big"} for i in range(1000)]
            await asyncio.gather(*(queue_webhook(enqueuer, e["id"], e, 1.0) for e in storm))
            await queue_webhook(enqueuer, "EV_other", {"id": "EV_other", "room_sid": "RM_other"}, 1.0)
            return [m.decode() for m in await redis.zrange(QUEUE, 0, -1)]
        finally:
            await redis.aclose()

    order = asyncio.run(scenario())
    assert order.index(webhook_job_id("EV_other")) < 500, order.index(webhook_job_id("EV_other"))
    stormed = [j for j in order if j != webhook_job_id("EV_other")]
    assert stormed == [webhook_job_id(f"EV_{i}") for i in range(1000)]


async def test_a_late_webhook_is_folded_from_a_checkpoint_not_from_the_rooms_first_event(
    engine: AsyncEngine, transitions: list[int]
) -> None:
    """300 seconds of comings and goings, then a webhook 5 s late: it is folded in from the checkpoint
    of its 30-second window (about 30 events), not from the first of 300, and lands where it belongs."""
    events = [
        parse(body(kind, id=f"EV_{i}", created_at=1000 + i, participant=person(f"p{i // 2}")))
        for i, kind in ((i, "participant_joined" if i % 2 == 0 else "participant_left") for i in range(300))
    ]
    for i, event in enumerate(events):
        if i != 296:  # p148's join, held back
            await record_event(engine, event, received_at=1000.0 + i, rules=POLICY)
    before = transitions[0]
    late = await record_event(engine, events[296], received_at=1300.0, rules=POLICY)
    assert late.outcome is Outcome.REFOLDED
    assert transitions[0] - before <= 35, transitions[0] - before
    log = [(e, 1000.0 + i) for i, e in enumerate(events) if i != 296] + [(events[296], 1300.0)]
    whole = machine.fold(Room(SID, NAME), log, rules=Rules.of((), POLICY))
    assert late.room is not None and late.room.people == whole.people
    assert unnumbered(late.room) == unnumbered(whole)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 3), st.booleans()), min_size=1, max_size=30))
async def test_late_webhooks_folded_from_checkpoints_give_the_fold_of_the_whole_log(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, steps: list[tuple[int, int, bool]]
) -> None:
    """Webhooks of random seconds in random order, checkpoints every 2 s: the room is always the fold of
    its whole log in the order it was recorded."""
    monkeypatch.setattr(checkpoints, "WINDOW", 2)
    sid = f"RM_p{next(RUNS)}"
    log = []
    for n, (second, who, joins) in enumerate(steps):
        kind = "participant_joined" if joins else "participant_left"
        event = parse(
            body(kind, id=f"{sid}_{n}", created_at=100 + second, sid=sid, participant=person(f"p{who}"))
        )
        recorded = await record_event(engine, event, received_at=float(n), rules=POLICY)
        log.append((event, float(n)))
        whole = machine.fold(Room(sid, NAME), log, rules=Rules.of((), POLICY))
        assert recorded.room is not None
        assert (recorded.room.people, unnumbered(recorded.room)) == (whole.people, unnumbered(whole)), n


async def webinar_of_sixty(engine: AsyncEngine) -> None:
    """The room `NAME` with 60 people joined (`p0`...`p59`, LiveKit's second 100)."""
    for i in range(60):
        await record_event(engine, joined(person(f"p{i}"), 100, f"EV_{i}"), received_at=100.0, rules=POLICY)


def web_settings(database_url: str, redis_url: str, **extra: Any) -> Settings:
    """The web's settings for the room's pages, with the notetaker expected."""
    return make_settings(
        database_url=database_url, redis_url=redis_url, warden_agent_name="notetaker", **extra
    )


async def test_the_api_and_the_dashboard_count_the_people_not_listed(
    engine: AsyncEngine, database_url: str, redis_url: str
) -> None:
    """A room of 60 people with 50 listed: the API says 50 listed and 10 more, the rooms page counts
    60, the room's page names the listed ones and "+10 more"."""
    await webinar_of_sixty(engine)
    settings = web_settings(database_url, redis_url, warden_room_people_listed=50)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        shown = (await client.get(f"/api/rooms/{NAME}")).json()
        assert (len(shown["people"]), shown["people_unlisted"]) == (50, 10)
        rooms = (await client.get("/")).text
        cells = re.search(rf'<tr data-room="{NAME}".*?</tr>', rooms, re.S)
        assert cells is not None and re.search(r"<td[^>]*>60</td>", cells.group(0))
        assert "+10 more" in (await client.get(f"/rooms/{NAME}")).text


async def test_a_rooms_webhooks_handed_over_together_out_of_order_are_put_in_lifecycle_order(
    engine: AsyncEngine,
) -> None:
    """Jobs run concurrently: the agent's `track_published` may reach the store just before its join of
    the same second. Waiting together, they are recorded join first, so the agent counts as working
    (in arrival order its track would have been ignored: the agent was not there yet)."""
    committer = GroupCommit(engine, POLICY)
    published = parse(body("track_published", id="EV_track", created_at=100, participant=agent("agent-1")))
    arrived = joined(agent("agent-1"), 100, "EV_agent")
    alice = joined(person("alice"), 99, "EV_alice")
    results = await asyncio.gather(*(committer.record([(e, 100.0)]) for e in (published, arrived, alice)))
    room = await load_room(engine, SID)
    assert room is not None and [a.active_at for a in room.agents] == [100.0]
    assert room.summary().phase is Phase.AGENT_ACTIVE
    assert {r.outcome for r in results} == {Outcome.APPLIED}


async def test_retention_deletes_a_rooms_checkpoints_with_it(engine: AsyncEngine) -> None:
    """Checkpoints are written as a room's webhooks open windows of seconds, and go with the room."""
    for i in range(4):
        event = joined(person(f"p{i}"), 1000 + 40 * i, f"EV_{i}")  # each 40 s on: a window each
        await record_event(engine, event, received_at=1000.0 + 40 * i, rules=POLICY)
    assert await _checkpoints(engine) == 2  # one a window parity
    finished = parse(body("room_finished", id="EV_end", created_at=1200))
    await record_event(engine, finished, received_at=1200.0, rules=POLICY)
    assert (await retention.prune(engine, cutoff=10_000.0))["rooms"] == 1
    assert await _checkpoints(engine) == 0


async def _checkpoints(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(ROOM_CHECKPOINTS)) or 0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 12), st.integers(0, 3), st.booleans()), max_size=40),
    st.integers(1, 8),
)
async def test_groups_of_many_batches_a_room_with_checkpoints_give_the_fold_of_the_whole_log(
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    steps: list[tuple[int, int, int, bool]],
    size: int,
) -> None:
    """Two rooms' webhooks of random seconds, recorded in groups of `size` batches (a room's several in
    one group, in order), checkpoints every 2 s: each room ends as the fold of its log in the order it
    was recorded."""
    monkeypatch.setattr(checkpoints, "WINDOW", 2)
    run = next(RUNS)
    logs: dict[str, list[tuple[Event, float]]] = {}
    batches = []
    for n, (room, second, who, joins) in enumerate(steps):
        sid = f"RM_g{run}_{room}"
        kind = "participant_joined" if joins else "participant_left"
        event = parse(
            body(kind, id=f"{sid}_{n}", created_at=100 + second, sid=sid, participant=person(f"p{who}"))
        )
        batches.append([(event, float(n))])
        logs.setdefault(sid, []).append((event, float(n)))
    for start in range(0, len(batches), size):
        results = await group.record_group(engine, batches[start : start + size], rules=POLICY)
        assert not [r for r in results if isinstance(r, Exception)]
    for sid, log in logs.items():
        room = await load_room(engine, sid)
        whole = machine.fold(Room(sid, NAME), log, rules=Rules.of((), POLICY))
        assert room is not None and (room.people, unnumbered(room)) == (whole.people, unnumbered(whole))


async def test_a_big_rooms_timeline_lists_the_newest_entries_and_counts_the_earlier_ones(
    engine: AsyncEngine, database_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A webinar's 60 joins with 20 entries shown: the API, the room's page and `warden room` list the
    newest 20 and count every entry before them, by type."""
    await webinar_of_sixty(engine)
    async with engine.connect() as connection:
        logged = await connection.scalar(select(func.count()).where(EVENTS.c.room_sid == SID))
    settings = web_settings(database_url, redis_url, warden_timeline_shown=20)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        shown = (await client.get(f"/api/rooms/{NAME}")).json()
        page = (await client.get(f"/rooms/{NAME}")).text
        code, printed = await run_cli(capsys, "--url", url, "room", NAME)
    joins = [e["participant"] for e in shown["timeline"] if e["type"] == "participant_joined"]
    assert len(shown["timeline"]) == 20 and joins[-1] == "p59"
    assert shown["timeline_earlier"]["participant_joined"] == 60 - len(joins)
    assert len(shown["timeline"]) + sum(shown["timeline_earlier"].values()) == logged
    assert f"{logged - 20} earlier entries not shown" in page
    assert code == 0 and f"{logged - 20} earlier entries not shown: " in printed
