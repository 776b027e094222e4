"""A room's deadline steps, shared by its deadline job (`workers.jobs.rooms.jobs.on_deadline`) and the
batches that do that job's work for many rooms (`workers.jobs.rooms.batch`)."""

from __future__ import annotations

from workers.core.actions import pending_actions
from workers.core.room import Action, CheckPresence, Evict, Redispatch, Room

MAX_STEPS = 6


def next_question(room: Room | None, attempt: int) -> Action | None:
    """The next question to LiveKit (check presence, evict, re-dispatch) of the room's deadline `attempt`
    (None: nothing left to ask, or the deadline is over)."""
    found = room.for_attempt(attempt) if room is not None else None
    if found is None:
        return None
    questions = (
        a
        for a in pending_actions(found)
        if isinstance(a, CheckPresence | Evict | Redispatch) and a.attempt == attempt
    )
    return next(questions, None)
