"""`workers.core.plain` must store exactly what `dataclasses.asdict` would: rooms and events written by
older code are read back by newer code, and the other way round."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from tests.support.events import parse
from tests.support.helpers import FIXTURES
from workers.core.events import DispatchInfo, EventKind, Fact, Participant, internal, to_dict
from workers.core.plain import as_dict
from workers.core.room import (
    Agent,
    AgentView,
    Deadline,
    Person,
    Reason,
    Recovery,
    Redispatch,
    Room,
    action_to_dict,
)


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_recorded_webhooks_convert_as_asdict_does(name: str) -> None:
    event = parse((FIXTURES / f"{name}.json").read_bytes())
    assert to_dict(event) == asdict(event)


def test_rooms_facts_and_actions_convert_as_asdict_does() -> None:
    room = Room(
        "RM_1",
        "call",
        people=(Person("alice", "PA_1", 1.0),),
        agents=(Agent("agent-1", "PA_2", "notetaker", 2.0, 3.0),),
        watch=None,
        views=(
            AgentView(
                "notetaker",
                deadline=Deadline(2, 30.0, Reason.JOIN),
                recovery=Recovery.REDISPATCHING,
                stale_dispatches=("AD_1", "AD_2"),
            ),
        ),
    )
    fact = Fact(
        1,
        5.0,
        True,
        (Participant("alice", "PA_1", 0),),
        (DispatchInfo("AD_1", "notetaker", "{}", 4.0, (0, 1)),),
    )
    event = internal(EventKind.PRESENCE_OBSERVED, "x", "RM_1", "call", fact)
    action = Redispatch(2, "notetaker", "{}", ("AD_1",))
    assert as_dict(room) == asdict(room) and type(as_dict(room)["people"]) is tuple
    assert to_dict(event) == asdict(event)
    assert action_to_dict(action) == {"action": "Redispatch", **asdict(action)}
    with pytest.raises(TypeError, match="not a dataclass"):
        as_dict(("a",))
