"""Retention (`WARDEN_RETENTION`): closed rooms and resolved incidents older than it go, with their
rows, in small batches; open ones stay however old; webhooks that arrive meanwhile are all kept."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from tests.support.processes import ROOT, procfile_argv
from tests.support.settings import KEY, SECRET, make_settings
from workers.core.errors import SettingsError
from workers.core.room import Phase
from workers.jobs.rooms.crons import prune
from workers.store import incidents, retention
from workers.store.models import EVENTS, INCIDENT_ACTIONS, INCIDENT_ROOMS, SLI_OUTCOMES
from workers.store.queries import find_room

HOUR = 3600.0


@pytest.fixture
async def h(redis_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, database_url, warden_retention="1h") as ready:
        yield ready


async def _count(engine: AsyncEngine, *where: object) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(EVENTS).where(*where)) or 0)  # type: ignore[arg-type]


async def _rows(engine: AsyncEngine, table: object, incident_id: str) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(table).where(table.c.incident_id == incident_id)  # type: ignore[attr-defined]
        )
        return int(count or 0)


async def _live(h: Harness, room: str, *, closed: bool) -> None:
    sid = f"RM_{room}"
    await h.send("participant_joined", room=room, sid=sid, participant=person("alice"))
    if closed:
        await h.send("room_finished", room=room, sid=sid)


def _pruned(what: str) -> float:
    return REGISTRY.get_sample_value("warden_pruned_total", {"what": what}) or 0.0


async def test_old_closed_rooms_and_resolved_incidents_go_open_ones_stay(h: Harness) -> None:
    await _live(h, "old-closed", closed=True)
    await _live(h, "old-open", closed=False)  # people still wait, whatever the reason: never deleted
    resolved, _ = await incidents.open_or_join(
        h.engine, "agent-a", "down", [("RM_old-closed", "x")], h.clock()
    )
    assert await incidents.room_recovered(h.engine, "agent-a", "RM_old-closed", h.clock()) is not None
    still_open, _ = await incidents.open_or_join(
        h.engine, "agent-b", "down", [("RM_old-open", "y")], h.clock()
    )
    h.advance(2 * HOUR)
    await _live(h, "new-closed", closed=True)
    before = _pruned("rooms")

    pruned = await prune(h.ctx)

    assert pruned["rooms"] == 1 and pruned["incidents"] == 1 and pruned["events"] >= 2
    assert pruned["room_agents"] == 1  # the closed room's expected agent went with it
    assert _pruned("rooms") == before + 1  # counted in the worker's /metrics
    assert await find_room(h.engine, "old-closed") is None
    assert await _count(h.engine, EVENTS.c.room_sid == "RM_old-closed") == 0
    assert (await h.room("RM_old-open")).phase is Phase.WAITING
    assert await incidents.waiting_rooms(h.engine, AGENT) == [("RM_old-open", "old-open")]
    assert await _count(h.engine, EVENTS.c.room_sid == "RM_old-open") >= 1
    assert (await h.room("RM_new-closed")).phase is Phase.CLOSED
    assert await incidents.get_incident(h.engine, resolved) is None
    assert await _rows(h.engine, INCIDENT_ROOMS, resolved) == 0
    assert await _rows(h.engine, INCIDENT_ACTIONS, resolved) == 0
    kept = await incidents.get_incident(h.engine, still_open)
    assert kept is not None and kept.resolved_at is None and len(kept.rooms) == 1
    assert await prune(h.ctx) == {}  # nothing older is left


async def test_pruning_while_webhooks_arrive_loses_none(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "ROOM_BATCH", 10)  # many short transactions between the webhooks
    rooms = [f"churn-{i}" for i in range(60)]
    for room in rooms:
        await h.send("room_started", room=room, sid=f"RM_{room}")
        await h.send("room_finished", room=room, sid=f"RM_{room}")
    h.advance(2 * HOUR)

    async def arrive() -> list[str]:
        sent = []
        for i, room in enumerate(rooms):
            # a late webhook of a room being pruned, and a new room's
            late, fresh = f"EV_late_{i}", f"EV_fresh_{i}"
            await h.send(
                "participant_left", room=room, sid=f"RM_{room}", event_id=late, participant=person("a")
            )
            await h.send("room_started", room=f"new-{i}", sid=f"RM_new-{i}", event_id=fresh)
            sent += [late, fresh]
        return sent

    sent, pruned = await asyncio.gather(arrive(), prune(h.ctx))

    assert pruned["rooms"] >= 1
    assert await _count(h.engine, EVENTS.c.event_id.in_(sent)) == len(sent)  # every webhook kept
    for i in range(len(rooms)):
        assert (await h.room(f"RM_new-{i}")).phase is Phase.IDLE


def test_retention_accepts_seconds_minutes_hours_and_days() -> None:
    durations = [make_settings(warden_retention=v).retention_seconds for v in ("45s", "90m", "12h", "30d")]
    assert durations == [45, 90 * 60, 12 * HOUR, 30 * 24 * HOUR]
    assert make_settings().retention_seconds == 30 * 24 * HOUR
    for bad in ("30", "30 days", "0d", "-1h", "1w"):
        with pytest.raises(SettingsError, match=r"^WARDEN_RETENTION: "):
            make_settings(warden_retention=bad)


def test_a_bad_retention_stops_the_worker_naming_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "WARDEN_"))}
    env.update(
        {
            "LIVEKIT_API_KEY": KEY,
            "LIVEKIT_API_SECRET": SECRET,
            "LIVEKIT_URL": "http://127.0.0.1:1",
            "WARDEN_RETENTION": "a month",
        }
    )
    done = subprocess.run(
        procfile_argv("worker"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "WARDEN_RETENTION: must be a positive whole number with a unit" in done.stderr
    assert "Traceback" not in done.stderr


async def test_service_levels_outcomes_older_than_the_retention_go_newer_ones_stay(h: Harness) -> None:
    for room in ("old-served", "new-served"):
        if room == "new-served":
            h.advance(2 * HOUR)
        await h.send("participant_joined", room=room, sid=f"RM_{room}", participant=person("alice"))
        await h.send("participant_joined", room=room, sid=f"RM_{room}", participant=agent("agent-1", AGENT))
    async with h.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(SLI_OUTCOMES)) == 2

    pruned = await prune(h.ctx)

    assert pruned.get("sli_outcomes") == 1
    async with h.engine.connect() as connection:
        assert list(await connection.scalars(select(SLI_OUTCOMES.c.room_name))) == ["new-served"]


async def test_a_table_whose_pruning_fails_leaves_the_others_pruned(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The rooms' deletion failing (a lock timeout, say) is logged; resolved incidents still go."""
    await _live(h, "old-closed", closed=True)
    resolved, _ = await incidents.open_or_join(
        h.engine, "agent-a", "down", [("RM_old-closed", "x")], h.clock()
    )
    assert await incidents.room_recovered(h.engine, "agent-a", "RM_old-closed", h.clock()) is not None
    h.advance(2 * HOUR)

    async def locked(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
        raise OperationalError(
            "DELETE FROM rooms ...", {}, TimeoutError("canceling statement due to lock timeout")
        )

    monkeypatch.setattr(retention, "_rooms", locked)
    pruned = await prune(h.ctx)
    assert "retention: deleting rooms failed (OperationalError)" in caplog.text
    assert pruned["incidents"] == 1 and await incidents.get_incident(h.engine, resolved) is None
    assert await find_room(h.engine, "old-closed") is not None  # its turn comes in the next run


async def test_a_bug_in_one_tables_pruning_is_seen_and_counted_and_the_database_gone_ends_the_run(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a lock timeout but a bug: logged at ERROR with its traceback and counted
    (`warden_passed_over_total{run="retention"}`), the other tables pruned. The database unreachable,
    which every table would meet, ends the run instead of a warning per table."""
    await _live(h, "old-closed", closed=True)
    resolved, _ = await incidents.open_or_join(
        h.engine, "agent-a", "down", [("RM_old-closed", "x")], h.clock()
    )
    assert await incidents.room_recovered(h.engine, "agent-a", "RM_old-closed", h.clock()) is not None
    h.advance(2 * HOUR)
    counted = REGISTRY.get_sample_value("warden_passed_over_total", {"run": "retention"}) or 0.0

    async def buggy(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
        raise KeyError("phase")

    monkeypatch.setattr(retention, "_rooms", buggy)
    pruned = await prune(h.ctx)
    (line,) = [r for r in caplog.records if "table rooms passed over in this run: KeyError" in r.getMessage()]
    assert line.levelname == "ERROR" and line.exc_info is not None
    assert REGISTRY.get_sample_value("warden_passed_over_total", {"run": "retention"}) == counted + 1
    assert pruned["incidents"] == 1 and await incidents.get_incident(h.engine, resolved) is None

    async def gone(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
        raise ConnectionRefusedError(111, "Connect call failed")

    monkeypatch.setattr(retention, "_rooms", gone)
    with pytest.raises(ConnectionRefusedError):
        await prune(h.ctx)
