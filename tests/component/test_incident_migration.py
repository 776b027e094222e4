"""Incidents recorded before the incident machine keep their meaning after the upgrade: migration 0008
gives each row the state its claims had reached, and the incident machine takes them up from there;
a downgrade brings the claims back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from tests.support.migrations import migrate
from tests.support.settings import make_settings
from workers.store.engine import make_engine
from workers.store.incidents import get_incident, open_agents

# id -> the claim columns set (at 100 s, or as given) on a row of the schema before 0008
BEFORE = {
    "IN_open": {},
    "IN_restarting": {"alerted_open_at": 100, "restart_claimed_at": 100},
    "IN_restarted": {"restart_claimed_at": 100, "restarted_at": 105, "restart_done_at": 105},
    "IN_failed": {"restart_claimed_at": 100, "restart_done_at": 110},
    "IN_rolling": {"restarted_at": 105, "followup_claimed_at": 130, "rollback_claimed_at": 130},
    "IN_rolled": {"restarted_at": 105, "rollback_claimed_at": 130, "rollback_done_at": 140},
    "IN_followed": {"restarted_at": 105, "followup_claimed_at": 130},
    "IN_resolved": {"restarted_at": 105, "resolved_at": 200},
}
AFTER = {
    "IN_open": "open",
    "IN_restarting": "restarting",
    "IN_restarted": "restarted",
    "IN_failed": "not_restarted",
    "IN_rolling": "rolling_back",
    "IN_rolled": "followed_up",
    "IN_followed": "followed_up",
    "IN_resolved": "resolved",
}


async def test_incidents_from_before_get_the_state_their_claims_reached_and_back(tmp_path: Path) -> None:
    engine = make_engine(make_settings(database_url=f"sqlite:///{tmp_path}/old.db").database_url)
    try:
        await migrate(engine, "upgrade", "0006")
        async with engine.begin() as connection:
            for n, (incident_id, claims) in enumerate(BEFORE.items()):
                columns = {"id": incident_id, "agent_name": f"agent-{n}", "reason": "outage", "opened_at": 90}
                columns |= claims
                if "resolved_at" not in claims:
                    columns["open_key"] = columns["agent_name"]
                names = ", ".join(columns)
                await connection.execute(
                    text(f"INSERT INTO incidents ({names}) VALUES ({', '.join(':' + c for c in columns)})"),
                    columns,
                )
        await migrate(engine, "upgrade", "head")
        for incident_id, state in AFTER.items():
            incident = await get_incident(engine, incident_id)
            assert incident is not None and incident.state == state, (incident_id, incident)
        assert len(await open_agents(engine)) == len(BEFORE) - 1
        await migrate(engine, "downgrade", "0006")
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT id, restart_done_at IS NOT NULL, followup_claimed_at IS NOT NULL FROM incidents")
            )
            back = {incident_id: (done, followed) for incident_id, done, followed in rows}
        assert back["IN_restarting"] == (False, False) and back["IN_failed"] == (True, False)
        assert back["IN_rolling"] == (True, True) and back["IN_open"] == (False, False)
    finally:
        await engine.dispose()
