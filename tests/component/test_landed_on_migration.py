"""An incident's log written before migration 0018 still tells the hand-over from observe mode where
its alerts landed: the migration fills each line's `landed_on` from the line's wording once, after
which Warden reads only the column (`workers.escalation.couriers.alerted_at_hand_over`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from tests.support.migrations import migrate
from tests.support.settings import make_settings
from workers.store.engine import make_engine
from workers.store.incidents import landed_on

LINES = [  # (action, outcome, carried_out), as the versions before 0018 wrote them
    ("alert opened", "alert webhook answered HTTP 200 (attempt 1)", True),
    ("PagerDuty opened", "failed (attempt 1): unavailable; tried again later", True),
    ("PagerDuty opened", "gave up (attempt 9, 3600 s after it was decided): unavailable", True),
    ("Opsgenie opened", "refused for good (attempt 1): 403", True),
    ("incident webhook opened", "incident webhook answered HTTP 200 (attempt 2)", True),
    ("incident webhook restarted", "not sent: no destination configured any more", True),
    ("alert", "would alert opened (slack): not sent, WARDEN_OBSERVE_ALERTS is off", False),
    ("restart", "would restart: its deployment", False),
]


async def test_lines_from_before_say_on_which_routes_an_alert_landed(tmp_path: Path) -> None:
    engine = make_engine(make_settings(database_url=f"sqlite:///{tmp_path}/old.db").database_url)
    try:
        await migrate(engine, "upgrade", "0017")
        async with engine.begin() as connection:
            for at, (action, outcome, done) in enumerate(LINES):
                await connection.execute(
                    text(
                        "INSERT INTO incident_actions (incident_id, at, action, outcome, carried_out) "
                        "VALUES ('IN_1', :at, :action, :outcome, :done)"
                    ),
                    {"at": at, "action": action, "outcome": outcome, "done": done},
                )
        await migrate(engine, "upgrade", "head")
        assert await landed_on(engine, "IN_1") == {"slack", "webhook"}
        await migrate(engine, "downgrade", "0017")
    finally:
        await engine.dispose()
