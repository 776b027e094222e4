"""A re-folded room's deadline numbers (`renumbered`): the store folds a room again for a late webhook
(`workers.store.writer`), and no number may then name two deadlines. Pure, like `workers.core.machine`."""

from __future__ import annotations

from dataclasses import replace

from workers.core.room import Room


def renumbered(before: Room, after: Room) -> Room:
    """`after`, the re-fold of `before`'s log, with no deadline number used twice in the room: a re-fold
    numbers deadlines as the log says, which can hand a deadline a number `before` (or a room before it)
    gave another one, whose timer job and events' ids are taken. A deadline `before` had too (the same
    part, reason and time, at the same step) keeps `before`'s number; any other numbered no higher than
    `before`'s newest gets a new one above every number issued (a deadline whose events the re-fold
    could not match is so asked about again, under a number of its own)."""
    top = max(before.attempt, after.attempt)
    for view in after.watchers():
        deadline = view.deadline
        if deadline is None:
            continue
        was = before.watch if not view.agent and before.watch is not None else before.view(view.agent)
        old = was.deadline if was is not None else None
        same_step = was is not None and was.recovery is view.recovery
        if old is not None and same_step and (old.reason, old.at) == (deadline.reason, deadline.at):
            number = old.attempt
        elif deadline.attempt > before.attempt:
            number = deadline.attempt
        else:
            top += 1
            number = top
        after = after.put(replace(view, deadline=replace(deadline, attempt=number)))
    return replace(after, attempt=top)
