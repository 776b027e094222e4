"""A room driven through the pure state machine step by step, for the unit tier's scenario tests."""

from __future__ import annotations

from itertools import count

from workers.core.events import DispatchInfo, Event, EventKind, Fact, Participant
from workers.core.events import internal as own_event
from workers.core.machine import transition
from workers.core.room import CheckPresence, Deadline, Room
from workers.core.rules import Rules

_ids = count(1)


class Driven:
    """A room ("RM_1", "call-1") moved through `machine.transition`, keeping every action decided."""

    def __init__(self, rules: Rules) -> None:
        self.room, self.rules, self.actions = Room("RM_1", "call-1"), rules, []  # type: ignore[var-annotated]

    def __call__(self, event: Event) -> list[object]:
        decision = transition(self.room, event, now=event.at, rules=self.rules)
        self.room, self.actions = decision.room, [*self.actions, *decision.actions]
        return list(decision.actions)

    def webhook(self, kind: EventKind, at: int, who: Participant) -> list[object]:
        return self(Event(f"EV_{next(_ids)}", kind, str(kind), at, "RM_1", "call-1", who))

    def own(self, kind: EventKind, fact: Fact) -> list[object]:
        return self(own_event(kind, f"{kind}:RM_1:{fact.attempt}", "RM_1", "call-1", fact))

    @property
    def deadline(self) -> Deadline | None:
        return self.room.views[0].deadline if self.room.views else None

    def check(self, at: float, present: tuple[Participant, ...], *dispatches: DispatchInfo) -> list[object]:
        """The deadline fires at `at`, and LiveKit answers with `present` and `dispatches`."""
        due = self.deadline
        assert due is not None and due.at <= at
        asked = self.own(EventKind.DEADLINE_PASSED, Fact(due.attempt, at))
        assert CheckPresence(due.attempt, "assistant") in asked
        return self.own(EventKind.PRESENCE_OBSERVED, Fact(due.attempt, at, True, present, dispatches))
