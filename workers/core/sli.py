"""Service levels (issue 29; README "Service levels"): what each expected agent of a room counts towards
its two service levels, once the room's fate for that agent is known. Pure, like `workers.core.machine`,
which keeps each part's `due_at` with `tracked` at every step; the store writes each outcome once, in
the room's own transaction (`workers.store.sli_outcomes`), and counts it then.

The rules, in plain words.
1. A part's join SLA ends at its first JOIN deadline's time (`due_at`: the first person's arrival, or
   `room_started` by policy, or the agent's later dispatch, plus its `join_sla`). A part learned from
   the room's own watch takes the watch's: its people have waited since then.
2. The SLA *ran out* once that time has passed without the agent: the agent is on time if it joined at
   or before `due_at`, and a wait that ended at `due_at` or before (its people left, or the room
   finished) is not counted. Such a wait forgets its `due_at`: people who come later start a wait of
   their own. A wait whose SLA ran out keeps it, whatever comes after.
3. The fate is known, and counted once, when the agent is first in the room while a person is or was
   there (it came), or when the room finishes without it after its SLA ran out. Then:
   - **on time**: good if it came at or before `due_at` without Warden's help (no re-dispatch nor
     restart for it yet: LiveKit's webhook times are whole seconds, so an agent Warden brought may
     carry a second within the SLA); bad otherwise;
   - **served**: good if it came, in time or not, Warden's re-dispatch or restart included; bad if the
     room finished without it. A fallback agent or a transfer is not the agent: the part is not served.
4. Not counted: a room that finished before the SLA ran out, a room nobody came to, an agent the room
   never expected (it has no part), the fallback agent (it is no part of the room's own). Several
   agents in one room are counted each for itself. A room still open (agent not come, room not
   finished) is not counted yet: it counts at the time its fate is known (`decided_at`), in the window
   that time falls in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from workers.core.phases import Reason
from workers.core.room import WAITING_PHASES, AgentView, Room

ON_TIME, SERVED = "on_time", "served"
SLIS = (ON_TIME, SERVED)
GOOD, BAD = "good", "bad"
# How a part's fate came about (`Outcome.how`).
CAME_ON_TIME, CAME_LATE, REDISPATCHED, RESTARTED, NEVER = (
    "on_time",
    "late",
    "redispatched",
    "restarted",
    "never",
)


@dataclass(frozen=True)
class Outcome:
    """One (room, agent)'s count: both service levels, when its fate was known, and how it came about
    (`on_time`, `late`, `redispatched`, `restarted`; not served: `never`)."""

    agent: str
    on_time: bool
    served: bool
    decided_at: float
    how: str

    def outcome(self, sli: str) -> str:
        """`good` or `bad` for `sli` (`on_time` or `served`)."""
        return GOOD if (self.on_time if sli == ON_TIME else self.served) else BAD


def tracked(before: Room, after: Room, at: float) -> Room:
    """`after`, the room after an event of time `at` applied to `before`, with each part's `due_at` as
    rules 1 and 2 keep it."""
    views = []
    for view in after.watchers():
        was = before.watch if view is after.watch else before.view(view.agent)
        due = view.due_at if was is not None else before.watch.due_at if before.watch is not None else None
        due = _due(view, due, at)
        views.append(view if due == view.due_at else replace(view, due_at=due))
    for view in views:
        after = after.put(view)
    return after


def _due(view: AgentView, due: float | None, at: float) -> float | None:
    if view.agent_joined_at is not None:
        return due  # it came: its fate is known, nothing more to keep
    if view.phase not in WAITING_PHASES:
        return due if due is not None and due < at else None  # a wait that ended in time is not counted
    if due is None and view.deadline is not None and view.deadline.reason is Reason.JOIN:
        return view.deadline.at
    return due


def decided(room: Room, view: AgentView) -> tuple[bool, bool, float] | None:
    """(on time, served, when) once the part's fate is known (rule 3), else None."""
    came, person = view.agent_joined_at, room.first_person_at
    if came is not None and person is not None:
        return view.due_at is None or came <= view.due_at, True, max(came, person)
    ended, due = room.finished_at, view.due_at
    if came is None and ended is not None and due is not None and ended > due:
        return False, False, ended
    return None


def outcomes(before: Room | None, after: Room) -> tuple[Outcome, ...]:
    """The outcomes `after` knows and `before` (the room as stored, None for a room new to Warden) did
    not: what a write of `after` newly counts."""
    found = []
    for view in after.views:
        fate = decided(after, view)
        was = before.view(view.agent) if before is not None else None
        if fate is None or (was is not None and before is not None and decided(before, was) is not None):
            continue
        on_time, served, at = fate
        helped = bool(view.redispatched) or (was is not None and was.outage_at is not None)
        on_time = on_time and not helped  # LiveKit's seconds are whole: Warden's help says it was late
        found.append(Outcome(view.agent, on_time, served, at, _how(view, was, on_time, served)))
    return tuple(found)


def _how(view: AgentView, was: AgentView | None, on_time: bool, served: bool) -> str:
    if on_time:
        return CAME_ON_TIME
    if served:
        if view.redispatched:
            return REDISPATCHED
        return RESTARTED if was is not None and was.outage_at is not None else CAME_LATE
    return NEVER  # a fallback agent or a transfer that stood in for it included


# --- objectives: the error budget (README "Service levels") -------------------------------------------


def ratio(good: int, total: int) -> float | None:
    """The share of good outcomes (None: nothing counted)."""
    return good / total if total else None


def burn_rate(good: int, total: int, objective: float) -> float:
    """How fast the budget burns: the bad share over the budget's share (1 - objective). 1: the budget
    lasts exactly the window; 0 when nothing was counted."""
    return (total - good) / total / (1 - objective) if total else 0.0


def budget_remaining(good: int, total: int, objective: float) -> float:
    """The share of the window's error budget left: 1 - (bad / total) / (1 - objective); 1 when nothing
    was counted, below 0 once it is overspent."""
    return 1 - burn_rate(good, total, objective)
