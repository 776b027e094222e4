"""A room's deadline steps, shared by its deadline job (`workers.jobs.rooms.jobs.on_deadline`) and the
batches that do that job's work for many rooms (`workers.jobs.rooms.batch`)."""

from __future__ import annotations

from workers.core.actions import pending_actions
from workers.core.events import Event, EventKind, Fact, internal
from workers.core.machine import transition
from workers.core.room import Action, CheckPresence, Evict, Redispatch, Room
from workers.core.rules import Rules

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


def deadline_passed(sid: str, name: str, attempt: int, at: float, agent: str) -> Event:
    """The event a room's deadline `attempt` for `agent` records when it passed: the same id whoever
    decides it (the room's own job or a batch), so that it is recorded once."""
    return internal(
        EventKind.DEADLINE_PASSED,
        f"deadline_passed:{sid}:{attempt}",
        sid,
        name,
        Fact(attempt, at, agent=agent),
    )


def first_check(room: Room, fired: Event, attempt: int, at: float, rules: Rules) -> Room | None:
    """The room with its deadline `fired` (in memory), when that deadline's first step is to ask LiveKit
    whether the agent is there (what a batch serves); None otherwise."""
    decided = transition(room, fired, now=at, rules=rules)
    if any(isinstance(a, CheckPresence) and a.attempt == attempt for a in decided.actions):
        return decided.room
    return None
