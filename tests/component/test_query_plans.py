"""Queries that stay fast: every statement the API, the dashboard, the sweep, reconciliation and
retention run is read back through PostgreSQL's `EXPLAIN` over tens of thousands of rows, and none may
scan `events`, `rooms`, `room_agents` or `sli_outcomes` whole. SQLite runs in WAL mode with its
checkpoints bounded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.settings import make_settings
from workers.core.events import EventKind, Fact, internal
from workers.core.room import Phase, Policy
from workers.migrate import upgrade
from workers.store import (
    incidents,
    liveness,
    log_rows,
    outbox,
    queries,
    retention,
    sli_outcomes,
    stats,
    writer,
)
from workers.store.engine import SQLITE_WAL_AUTOCHECKPOINT_PAGES, SQLITE_WAL_LIMIT_BYTES, make_engine
from workers.store.models import EVENTS

ROOMS, EVENTS_PER_ROOM, INCIDENTS = 30_000, 10, 2_000
NOW = 2_000_000_000.0
YEAR_ON = NOW + 364 * 86400
STATE = (
    '{"sid": "RM_x", "name": "x", "phase": "closed", "people": [], "agents": [{"identity": "agent-1", "sid": '
    '"PA_1", "name": "notetaker", "joined_at": 1.0, "active_at": 2.0}], "started_at": 1.0, "finished_at": '
    '3.0, "first_person_at": 1.0, "agent_joined_at": 1.5, "waiting_since": null, "updated_at": 3.0, '
    '"deadline": null, "attempt": 0, "recovery": "none", "redispatches": 0, "stale_dispatches": [], '
    '"dispatch_metadata": "", "dispatch_id": "", "evict": "", "error": "", "dispatched_on_start": false}'
)

# A day of rooms, one in twenty still open, with their events; incidents, mostly resolved; a little outbox.
FILL = f"""
INSERT INTO rooms (sid, name, phase, state, version, last_created_at, last_rank, first_seen_at, updated_at,
                   deadline_at, recovery, time_to_agent, confirmed_at)
SELECT 'RM_' || i, 'room-' || i,
       CASE WHEN i % 20 = 0
            THEN (ARRAY['waiting', 'agent_active', 'agent_lost', 'idle', 'no_agent_expected'])[1 + i / 20 % 5]
            ELSE 'closed' END,
       replace('{STATE}', 'RM_x', 'RM_' || i)::json, 3, 0, 0,
       {NOW} - 86400 + i * 2.0, {NOW} - 86400 + i * 2.0 + 90,
       CASE WHEN i % 40 = 0 THEN {NOW} + i % 60 END, 'none', 4.5, NULL
FROM generate_series(1, {ROOMS}) AS i;
INSERT INTO room_agents (room_sid, agent, phase, recovery, deadline_at, waiting_since, redispatches,
                         updated_at)
SELECT sid, agent, phase, 'none', deadline_at, NULL, 0, updated_at
FROM rooms, (VALUES ('notetaker'), ('assistant')) AS expected (agent)
WHERE agent = 'notetaker' OR right(sid, 1) IN ('0', '5');
INSERT INTO events (event_id, room_sid, kind, name, participant_identity, created_at, received_at, data)
SELECT 'EV_' || r || '_' || e, 'RM_' || r, 'participant_joined', 'participant_joined', 'user-' || e,
       ({NOW} - 86400 + r * 2)::int, {NOW} - 86400 + r * 2.0 + e,
       ('{{"id": "EV_' || r || '_' || e || '", "kind": "participant_joined", "name": "participant_joined", '
        || '"created_at": 1, "room_sid": "RM_' || r || '", "room_name": "room-' || r || '"}}')::json
FROM generate_series(1, {ROOMS}) AS r, generate_series(1, {EVENTS_PER_ROOM}) AS e;
INSERT INTO incidents (id, agent_name, open_key, reason, opened_at, resolved_at)
SELECT 'IN_' || i, 'agent-' || i, CASE WHEN i % 100 = 0 THEN 'agent-' || i END, 'three rooms',
       {NOW} - 86400 + i * 40.0, CASE WHEN i % 100 <> 0 THEN {NOW} - 86400 + i * 40.0 + 300 END
FROM generate_series(1, {INCIDENTS}) AS i;
INSERT INTO incident_rooms (incident_id, room_sid, room_name, added_at)
SELECT 'IN_' || i, 'RM_' || (i * 10 + k), 'room-' || (i * 10 + k), {NOW} - 86400 + i * 40.0
FROM generate_series(1, {INCIDENTS}) AS i, generate_series(1, 3) AS k;
INSERT INTO incident_actions (incident_id, at, action, outcome)
SELECT 'IN_' || i, {NOW} - 86400 + i * 40.0 + k, 'restart', 'ok'
FROM generate_series(1, {INCIDENTS}) AS i, generate_series(1, 3) AS k;
INSERT INTO sli_outcomes (room_sid, agent, room_name, decided_at, on_time, served, how)
SELECT 'RM_' || i, agent, 'room-' || i, {NOW} - 86400 + i * 1051.2, i % 50 <> 0, i % 200 <> 0,
       CASE WHEN i % 50 = 0 THEN 'late' ELSE 'on_time' END
FROM generate_series(1, {ROOMS}) AS i, (VALUES ('notetaker'), ('assistant')) AS expected (agent);
INSERT INTO outbox (id, room_sid, kind, payload, created_at, due_at, attempts)
SELECT 'EV_' || i || '#0', 'RM_' || i, 'ScheduleDeadline',
       '{{"action": "ScheduleDeadline", "attempt": 1, "at": 1.0, "reason": "join"}}'::json,
       {NOW} - i, {NOW} - i, 0
FROM generate_series(1, 500) AS i;
"""


@pytest.fixture
async def filled(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """The session's PostgreSQL database, filled (and vacuumed, as autovacuum would), emptied after."""
    engine = make_engine(make_settings(database_url=postgres_url).database_url)
    await upgrade(engine)
    raw = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(raw)
    tables = "events, rooms, room_agents, incidents, incident_rooms, incident_actions, outbox, sli_outcomes"
    try:
        await connection.execute(f"TRUNCATE {tables}")
        await connection.execute(FILL)
        await connection.execute("VACUUM ANALYZE")
        yield engine
    finally:
        await connection.execute(f"TRUNCATE {tables}")
        await connection.close()
        await engine.dispose()


Call = Callable[[AsyncEngine], Awaitable[Any]]
# The tables that grow with traffic: never read whole.
WHOLE = ("events", "rooms", "room_agents", "sli_outcomes")
SIDS = [f"RM_{i}" for i in range(100, 300)]
POLICY = Policy(agent_name="notetaker")


def _reconciled() -> Any:
    return internal(EventKind.RECONCILED, "reconciled:RM_40:1", "RM_40", "room-40", Fact(at=NOW))


# What each part of Warden asks the database, called as that part calls it.
CALLS: dict[str, Call] = {
    "API/dashboard: rooms page": lambda e: queries.list_rooms(e, limit=50, offset=0),
    "API/dashboard: rooms in a phase": lambda e: queries.list_rooms(e, limit=50, offset=100, phase="waiting"),
    "API/dashboard: one room": lambda e: queries.find_room(e, "room-1234"),
    "API/dashboard: confirmations": lambda e: queries.confirmations(e, SIDS),
    "dashboard: phase counts": stats.phase_counts,
    "dashboard: time to agent": lambda e: stats.time_to_agent_since(e, NOW - 3600),
    "dashboard: incidents by room": lambda e: stats.open_incidents_by_room(e, SIDS),
    "dashboard: open incidents": stats.open_incident_count,
    "dashboard: incidents page": lambda e: incidents.list_incidents(e, limit=100, offset=0),
    "sweep: overdue deadlines": lambda e: queries.overdue_deadlines(e, NOW),
    "sweep: outbox": lambda e: outbox.due(e, NOW),
    "restart: rooms waiting for its agent": lambda e: incidents.waiting_rooms(e, "assistant"),
    "sweep: settle an incident": lambda e: incidents.room_recovered(e, "agent-100", "RM_1000", NOW),
    "reconcile: open rooms": queries.open_rooms,
    "reconcile: known sids": lambda e: queries.known_sids(e, SIDS),
    "reconcile: load rooms": lambda e: queries.load_rooms(e, SIDS),
    "reconcile: confirm": lambda e: writer.confirm(e, SIDS, NOW),
    "discover: rooms expecting no agent": lambda e: queries.unconfirmed(e, Phase.NO_AGENT_EXPECTED, NOW, 12),
    "liveness: how many rooms an agent may be in": liveness.candidate_count,
    "liveness: the next rooms an agent may be in": lambda e: liveness.candidates_after(e, "RM_1", 100),
    "heartbeat: room by name": lambda e: writer.load_room_named(e, "room-40"),
    "writer: record": lambda e: writer.record_event(e, _reconciled(), received_at=NOW, rules=POLICY),
    # A year of outcomes from a day before NOW (retention's batch below finds few), read a year on
    # with a 30-day window: only the window's rows are read.
    "API/dashboard: service levels over the window": lambda e: sli_outcomes.totals(e, YEAR_ON - 30 * 86400),
    "API/dashboard: service levels over the hour": lambda e: sli_outcomes.totals(e, YEAR_ON - 3600),
    "dashboard: an agent's ratios over time": lambda e: sli_outcomes.series(
        e, "notetaker", YEAR_ON - 30 * 86400, 86400
    ),
    "dashboard: rooms that spent the budget": lambda e: sli_outcomes.spent(
        e, "notetaker", YEAR_ON - 30 * 86400
    ),
    "check: retention backlog": lambda e: retention.closed_rooms_older_than(e, NOW - 3600),
    # The oldest few rooms and incidents only: one batch of each, every statement of it.
    "retention: prune": lambda e: retention.prune(e, NOW - 86400 + 120),
}


def _scans(plan: dict[str, Any]) -> list[str]:
    """The tables a plan reads whole."""
    found = [plan["Relation Name"]] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", ()):
        found += _scans(child)
    return found


@pytest.mark.postgres
async def test_no_query_scans_events_or_rooms_whole(filled: AsyncEngine) -> None:
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        seen.append((statement, parameters[0] if many and parameters else parameters))

    failures, explained = [], 0
    for name, call in CALLS.items():
        seen.clear()
        event.listen(filled.sync_engine, "before_cursor_execute", capture)
        try:
            await call(filled)
        finally:
            event.remove(filled.sync_engine, "before_cursor_execute", capture)
        statements = [
            (s, p) for s, p in seen if s.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
        ]
        assert statements, f"{name}: ran no query"
        async with filled.connect() as connection:
            for statement, parameters in statements:
                if statement.strip() == "SELECT 1":
                    continue
                result = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
                (plan,) = result.scalar_one()
                explained += 1
                scanned = {t for t in _scans(plan["Plan"]) if t in WHOLE}
                if scanned:
                    failures.append(f"{name}: scans {', '.join(sorted(scanned))} whole:\n  {statement}")
    assert not failures, "\n".join(failures)
    assert explained >= len(CALLS)


async def test_sqlite_runs_in_wal_mode_with_bounded_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "warden.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            pragmas = [
                (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "wal_autocheckpoint", "journal_size_limit")
            ]
            assert pragmas == ["wal", SQLITE_WAL_AUTOCHECKPOINT_PAGES, SQLITE_WAL_LIMIT_BYTES]
        await upgrade(engine)
        started, largest = time.monotonic(), 0
        blob = "x" * 4000
        for batch in range(150):  # ~60 MB written, far beyond one checkpoint's worth
            rows = [
                log_rows.event_row(
                    internal(EventKind.HEARTBEAT, f"hb:{batch}:{i}", "RM_1", "r", Fact(at=1.0, error=blob)),
                    1.0,
                )
                for i in range(100)
            ]
            async with engine.begin() as connection:
                await connection.execute(insert(EVENTS), rows)
            largest = max(largest, Path(f"{path}-wal").stat().st_size)
        assert largest <= SQLITE_WAL_LIMIT_BYTES + 2 * 1024 * 1024, f"the WAL grew to {largest} bytes"
        assert time.monotonic() - started < 60
    finally:
        await engine.dispose()
