"""Notices: the decided actions that need no answer (a deadline to queue, a first dispatch, an
escalation, a breach or recovery to report), routed to the adapters and the escalation by `Effects`."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from workers.core.errors import UpstreamError
from workers.core.room import Dispatch, Escalate, ReportBreach, ReportRecovered, ScheduleDeadline
from workers.jobs.effects import Effects
from workers.store.writer import Recorded

log = logging.getLogger("warden.worker")


async def carry_out_notices(effects: Effects, recorded: Recorded) -> None:
    """Carry out the notices among `recorded`'s actions. A failure here is logged, not fatal: the
    deadline is in the database for the sweep, and a missed first dispatch is caught by the SLA."""
    if recorded.room is None:
        return
    for action in recorded.actions:
        if isinstance(action, ScheduleDeadline | Dispatch | Escalate | ReportBreach | ReportRecovered):
            try:
                await effects.execute(action, recorded.room)
            except (UpstreamError, RedisError, SQLAlchemyError, OSError) as exc:
                what = str(exc) if isinstance(exc, UpstreamError) else type(exc).__name__
                log.warning("%s for room %s failed: %s", type(action).__name__, recorded.room.name, what)
