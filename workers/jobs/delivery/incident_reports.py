"""The `report_to_incident` job: one room's report to its agent's incident (a breach to count, a failed
room, a recovery), fed by the outbox (`workers.jobs.delivery.outbox`) with the notice's id as its job
id, under a timeout of its own, so that restarts, alerts and their retries never hold up, or are cut
short by, a room's job. (A breach or a recovery the room's job can report cheaply is reported there,
without this job: `Effects.fold_report`.) Registered under its name before issue 22 too (`escalate`),
for the jobs queued then."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from workers.core.errors import UpstreamError
from workers.core.plain import from_plain
from workers.jobs.runtime.context import context
from workers.jobs.runtime.retry import retry_later
from workers.store.outbox import Notice
from workers.store.writer import load_room

INCIDENT_REPORT_TIMEOUT_SECONDS = 300


async def report_to_incident(
    ctx: dict[str, Any], notice_id: str, room_sid: str, action: dict[str, Any]
) -> str:
    """Job: report `action` (a `ReportFailed`, `ReportBreach` or `ReportRecovered`) to the incidents for
    the room as it stands now; retried while Redis, the database or LiveKit is unavailable."""
    worker = context(ctx)
    room = await load_room(worker.engine, room_sid, legacy_agent=worker.rules.legacy_agent)
    if room is None:
        return "no room"
    notice: Notice = from_plain(Notice, action)  # told apart by its tag, as `action_to_dict` wrote it
    try:
        await worker.effects.execute(notice, room)
    except (UpstreamError, RedisError, SQLAlchemyError, OSError) as exc:
        raise retry_later(
            ctx, "incident report %s failed (%s); retried in %.0fs", notice_id, type(exc).__name__
        ) from exc
    return type(notice).__name__
