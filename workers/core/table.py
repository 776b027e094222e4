"""How Warden's state machines are written down: one table each, a rule for every (state, input) pair.

`table` builds one from a grid, one row per input and one rule per state in the states' order, so that
it reads like the tables in a textbook; a pair without a rule stops the import with an
`UndeclaredTransition` that names it. `ignore` is the room's rule for a pair that changes nothing:
declared, so that "nothing" is a decision, not a default. The room's rules all take the room first and
give the room back (the presence rules with the event, the recovery rules with one agent's part of it),
so one `ignore` serves both of its tables; the incident machine, whose rules take and give other values,
has an `ignore` of its own. A rule can be any value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from itertools import product
from types import MappingProxyType
from typing import TypeVar

from workers.core.errors import UndeclaredTransition
from workers.core.room import Room

State = TypeVar("State", bound=Enum)
Input = TypeVar("Input", bound=Enum)
Rule = TypeVar("Rule")


def ignore(room: Room, *_: object) -> Room:
    """The pair changes nothing."""
    return room


def table(
    name: str, states: type[State], inputs: type[Input], rows: Mapping[Input, Sequence[Rule]]
) -> Mapping[tuple[State, Input], Rule]:
    """`{(state, input): rule}` from `rows[input]`, one rule per member of `states` in their order."""
    order = list(states)
    rules = {(state, key): rule for key, row in rows.items() for state, rule in zip(order, row, strict=False)}
    missing = [f"({state}, {key})" for key, state in product(inputs, order) if (state, key) not in rules]
    longer = [str(key) for key, row in rows.items() if len(row) > len(order)]
    problems = [f"no rule for {', '.join(missing)}"] if missing else []
    problems += [f"more rules than {states.__name__} has members for {', '.join(longer)}"] if longer else []
    if problems:
        raise UndeclaredTransition(f"{name}: {'; '.join(problems)}")
    return MappingProxyType(rules)
