"""Record a batch of one room's events from a job: through the group commit (`workers.store.group`,
which records a room's batches in the order they come, many in one transaction), counted in the
worker's metrics, then its notices delivered from the outbox (`workers.jobs.delivery.outbox`)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from workers.core.events import Event
from workers.jobs.delivery.outbox import deliver
from workers.jobs.runtime import faults
from workers.jobs.runtime.context import context
from workers.jobs.runtime.metrics import count_outcomes, observe_recorded
from workers.jobs.runtime.retry import retry_later
from workers.store.writer import Outcome, Recorded

log = logging.getLogger("warden.worker")


async def record(ctx: dict[str, Any], batch: list[tuple[Event, float]]) -> Recorded:
    """Record events of one room (see `store.record_events`; concurrent jobs' batches are committed
    together), then deliver the notices decided. While the database is unavailable the job is
    retried later."""
    worker = context(ctx)
    first = batch[0][0]
    try:
        recorded = await worker.committer.record(batch)
    except (OperationalError, DBAPIError, OSError) as exc:
        raise retry_later(
            ctx, "database unavailable (%s); %s retried in %.0fs", type(exc).__name__, first.id
        ) from exc
    for event, _ in batch:
        log.info(
            "%s %s room=%s: %s",
            event.name,
            event.id,
            event.room_name or "-",
            recorded.outcome,
            extra={"room": event.room_name or None, "event": event.name, "outcome": recorded.outcome},
        )
    if recorded.outcome is not Outcome.DUPLICATE:
        observe_recorded(
            [e for e, _ in batch],
            recorded.before,
            recorded.room,
            recorded.actions,
            observe=worker.rules.observe,
        )
    count_outcomes(recorded.counted)  # written first by this recording, committed: counted once
    if recorded.room is not None and recorded.notices:
        faults.after_commit(recorded.notices)  # a crash test's hook (WARDEN_FAULT_AT); unset, nothing
        await deliver(worker.effects, worker.delivered, recorded.notices, recorded.room)
    return recorded
