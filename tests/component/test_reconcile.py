"""Reconciliation: Warden's open rooms against LiveKit's (`ListRooms`, `ListParticipants`), through the
real client and the stand-in LiveKit; every correction is a line in the room's log, and a room found as
Warden knows it gets none (only its `confirmed_at`)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from tests.support.settings import make_settings
from workers.core.presence import RECONCILE_GRACE_SECONDS
from workers.core.room import Phase
from workers.jobs.rooms.crons import reconcile
from workers.jobs.rooms.jobs import heartbeat
from workers.store.queries import confirmations, find_room


@pytest.fixture
async def h(redis_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, database_url, warden_reconcile_batch=3) as ready:
        yield ready


def sid(room: str) -> str:
    return f"RM_{room}"


async def test_room_livekit_no_longer_has_is_closed(h: Harness) -> None:
    await h.send(
        "participant_joined", room="lost-finish", sid=sid("lost-finish"), participant=person("alice")
    )
    assert (await h.room(sid("lost-finish"))).phase is Phase.WAITING  # its room_finished never came
    assert await reconcile(h.ctx) == {
        "closed": 0,
        "adopted": 0,
        "asked": 0,
        "confirmed": 0,
    }  # heard of just now: kept
    h.advance(RECONCILE_GRACE_SECONDS + 1)
    assert await reconcile(h.ctx) == {"closed": 1, "adopted": 0, "asked": 0, "confirmed": 0}
    room = await h.room(sid("lost-finish"))
    assert (room.phase, room.deadline) == (Phase.CLOSED, None)
    found = await find_room(h.engine, "lost-finish")
    assert found is not None and found.timeline[-1].name == "reconciled"


async def test_room_warden_never_heard_of_is_adopted_with_livekits_join_time(h: Harness) -> None:
    joined = int(h.clock.now) - 5
    h.fake.join("unseen", "alice", at=joined)
    assert (await reconcile(h.ctx))["adopted"] == 1
    room, whole = await h.room(sid("unseen")), await h.whole(sid("unseen"))
    assert room.phase is Phase.WAITING and [p.identity for p in whole.people] == ["alice"]
    assert room.waiting_since == joined and room.deadline is not None and room.deadline.at == joined + 15
    assert await h.timers() == [f"deadline:{sid('unseen')}:1"]


async def test_presence_is_corrected_both_ways(h: Harness) -> None:
    await h.send("participant_joined", room="drift", sid=sid("drift"), participant=person("alice"))
    await h.send("participant_joined", room="drift", sid=sid("drift"), participant=agent("agent-1", AGENT))
    h.fake.join("drift", "bob")  # alice left and bob came, and both webhooks were lost; the agent left too
    h.advance(RECONCILE_GRACE_SECONDS + 1)
    await reconcile(h.ctx)
    room, whole = await h.room(sid("drift")), await h.whole(sid("drift"))
    assert [p.identity for p in whole.people] == ["bob"] and whole.agents == ()
    assert room.phase is Phase.AGENT_LOST and room.deadline is not None


async def test_each_run_asks_about_a_bounded_number_of_rooms(h: Harness) -> None:
    for i in range(7):
        h.fake.join(f"many-{i}", "alice")
    first = await reconcile(h.ctx)
    assert first == {"closed": 0, "adopted": 3, "asked": 3, "confirmed": 0}
    assert sum(1 for method, _ in h.fake.calls if method == "ListParticipants") == 3
    second = await reconcile(h.ctx)
    assert second["adopted"] == 3
    third = await reconcile(h.ctx)
    assert third["adopted"] == 1 and third["asked"] == 3  # the last unknown one, then the least recent


async def test_a_room_warden_saw_finish_is_not_adopted_again(h: Harness) -> None:
    h.fake.join("done", "alice")
    await h.send("participant_joined", room="done", sid=sid("done"), participant=person("alice"))
    await h.send("room_finished", room="done", sid=sid("done"))  # LiveKit still lists it, for a moment
    assert await reconcile(h.ctx) == {"closed": 0, "adopted": 0, "asked": 0, "confirmed": 0}
    assert (await h.room(sid("done"))).phase is Phase.CLOSED


async def test_a_listing_older_than_a_join_does_not_undo_it(h: Harness) -> None:
    """LiveKit listed the room just before the agent joined; the join's webhook was recorded first.
    The agent stays (no "agent lost", no second dispatch) until a later listing still lacks it."""
    h.fake.join("race", "alice")
    await h.send("participant_joined", room="race", sid=sid("race"), participant=person("alice"))
    await h.send("participant_joined", room="race", sid=sid("race"), participant=agent("agent-1", AGENT))
    await reconcile(h.ctx)  # the stand-in lists alice only, as a listing taken a moment earlier would
    room, whole = await h.room(sid("race")), await h.whole(sid("race"))
    assert room.phase is Phase.AGENT_PRESENT and [a.identity for a in whole.agents] == ["agent-1"]
    assert h.fake.created == []
    h.advance(RECONCILE_GRACE_SECONDS + 1)
    await reconcile(h.ctx)
    assert (await h.room(sid("race"))).phase is Phase.AGENT_LOST  # still missing: LiveKit is right


async def _log(h: Harness, room: str) -> list[str]:
    found = await find_room(h.engine, room)
    assert found is not None
    return [entry.name for entry in found.timeline]


async def test_a_room_as_warden_knows_it_gets_no_line_only_its_confirmation(h: Harness) -> None:
    h.fake.join("calm", "alice")
    h.fake.join("calm", "agent-1", agent_name=AGENT)
    await h.send("participant_joined", room="calm", sid=sid("calm"), participant=person("alice"))
    await h.send("participant_joined", room="calm", sid=sid("calm"), participant=agent("agent-1", AGENT))
    logged = await _log(h, "calm")
    for _ in range(3):
        h.advance(RECONCILE_GRACE_SECONDS + 1)
        assert (await reconcile(h.ctx))["confirmed"] == 1
    assert await _log(h, "calm") == logged  # no "reconciled" line for a look that found nothing new
    assert await confirmations(h.engine, [sid("calm")]) == {sid("calm"): h.clock.now}
    h.fake.leave("calm", "alice")  # her participant_left was lost: the next look corrects it, in the log
    h.advance(RECONCILE_GRACE_SECONDS + 1)
    assert (await reconcile(h.ctx))["confirmed"] == 0
    assert await _log(h, "calm") == [*logged, "reconciled"]
    assert (await h.whole(sid("calm"))).people == ()


def _last_confirmed(html: str) -> str:
    found = re.search(r"<dt>Last confirmed</dt><dd[^>]*>([^<]*)</dd>", html)
    assert found, "no 'Last confirmed' on the room page"
    return found.group(1)


async def test_the_api_and_the_dashboard_say_when_a_quiet_room_was_last_confirmed(
    h: Harness, redis_url: str, database_url: str
) -> None:
    h.clock.now = time.time() - 120  # confirmed two minutes ago, by the dashboard's clock
    h.fake.join("calm", "alice")
    h.fake.join("calm", "agent-1", agent_name=AGENT)
    await h.send("participant_joined", room="calm", sid=sid("calm"), participant=person("alice"))
    await h.send("participant_joined", room="calm", sid=sid("calm"), participant=agent("agent-1", AGENT))
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_agent_name=AGENT)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        before = (await client.get("/api/rooms/calm")).json()
        assert before["confirmed_at"] is None
        assert _last_confirmed((await client.get("/rooms/calm")).text) == "-"
        h.advance(RECONCILE_GRACE_SECONDS + 1)
        assert (await reconcile(h.ctx))["confirmed"] == 1
        after = (await client.get("/api/rooms/calm")).json()
        confirmed = datetime.fromtimestamp(h.clock.now, UTC).isoformat().replace("+00:00", "Z")
        assert after["confirmed_at"] == confirmed
        assert after["timeline"] == before["timeline"]  # confirmed, and no event written for it
        listed = (await client.get("/api/rooms")).json()["rooms"]
        assert [r["confirmed_at"] for r in listed if r["name"] == "calm"] == [confirmed]
        shown = _last_confirmed((await client.get("/rooms/calm")).text)
        assert re.fullmatch(r"1 min \d+ s ago", shown), shown


async def test_a_heartbeat_of_an_agent_known_active_writes_nothing(h: Harness) -> None:
    await h.send("participant_joined", room="beat", sid=sid("beat"), participant=person("alice"))
    await h.send("participant_joined", room="beat", sid=sid("beat"), participant=agent("agent-1", AGENT))
    assert await heartbeat(h.ctx, "beat", "agent-1", h.clock.now) == "applied"  # news: the agent works
    logged = await _log(h, "beat")
    h.advance(5)
    assert await heartbeat(h.ctx, "beat", "agent-1", h.clock.now) == "confirmed"
    assert await _log(h, "beat") == logged
    assert (await h.room(sid("beat"))).phase is Phase.AGENT_ACTIVE
