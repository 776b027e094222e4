"""`workers.core.plain` must store exactly what `dataclasses.asdict` would, and `from_plain` must give
back exactly what was stored: rooms and events written by older code are read back by newer code, and
the other way round (the shapes older versions wrote: `test_stored_shapes`)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass
from enum import Enum
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.events import parse
from tests.support.helpers import FIXTURES
from workers.core import stored as room_rows
from workers.core.errors import UnreadableRecord
from workers.core.events import DispatchInfo, Event, EventKind, Fact, Participant, internal, to_dict
from workers.core.outgoing import Outgoing
from workers.core.plain import as_dict, from_plain
from workers.core.room import (
    Action,
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
from workers.store import outbox
from workers.store.outbox import Notice


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


# --- from_plain: what is stored comes back as it was -----------------------------------------------------


def values(tp: Any) -> st.SearchStrategy[Any]:
    """Any value of type `tp`, read off the same field types `from_plain` reads (finite floats: JSON
    and the database hold no NaN, and NaN equals nothing)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is UnionType or origin is Union:
        return st.one_of(*(values(a) for a in args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(values(args[0]), max_size=3).map(tuple)
        return st.tuples(*(values(a) for a in args))
    if tp is type(None):
        return st.none()
    if is_dataclass(tp):
        hints = get_type_hints(tp)
        return st.builds(tp, **{f.name: values(hints[f.name]) for f in fields(tp)})
    if issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    return {
        str: st.text(max_size=6),
        int: st.integers(),
        float: st.floats(allow_nan=False, allow_infinity=False),
        bool: st.booleans(),
    }[tp]


# No deadline: a shared, busy machine must not fail a test for being slow. Fifty examples of each type
# meet every field in every shape it can take (None or not, empty tuples or not) many times over.
patiently = settings(deadline=None, max_examples=50)


def stored(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as the database hands it back: JSON, so lists for tuples and values for enums."""
    loaded: dict[str, Any] = json.loads(json.dumps(data))
    return loaded


def same(decoded: Any, value: Any) -> bool:
    """Equal, and of the same types all the way down (a plain string equals its StrEnum member, a list
    never equals a tuple but 1 equals 1.0: `repr` tells them apart)."""
    return bool(decoded == value) and repr(decoded) == repr(value)


@pytest.mark.parametrize("cls", [Event, AgentView], ids=lambda cls: cls.__name__)
@patiently
@given(data=st.data())
def test_an_event_and_an_agent_view_come_back_as_they_were_stored(cls: type, data: st.DataObject) -> None:
    value = data.draw(values(cls))
    assert same(from_plain(cls, stored(as_dict(value))), value)
    assert same(from_plain(cls, as_dict(value)), value)  # as ARQ pickles a job's arguments: tuples, enums


@patiently
@given(values(Room))
def test_a_room_and_its_agent_views_come_back_as_they_were_stored(room: Room) -> None:
    assert same(room_rows.from_dict(stored(room_rows.to_dict(room))), room)


@pytest.mark.parametrize("cls", get_args(Action), ids=lambda cls: cls.__name__)
@patiently
@given(data=st.data())
def test_every_action_comes_back_as_it_was_logged(cls: type, data: st.DataObject) -> None:
    action = data.draw(values(cls))
    assert same(from_plain(Action, stored(action_to_dict(action))), action)


@pytest.mark.parametrize("cls", get_args(Notice), ids=lambda cls: cls.__name__)
@patiently
@given(data=st.data())
def test_every_outbox_notice_comes_back_by_its_kind(cls: type, data: st.DataObject) -> None:
    notice = data.draw(values(cls))
    event = Event("EV_1", EventKind.PARTICIPANT_JOINED, "participant_joined", 1, "RM_1")
    (row,) = outbox.rows([(event, 1.0, (notice,))])
    assert row["kind"] == cls.__name__
    assert same(outbox.payload(row["kind"], stored(row["payload"])), notice)
    assert same(from_plain(Notice, action_to_dict(notice)), notice)  # the `escalate` job's argument


@pytest.mark.parametrize("cls", get_args(Outgoing), ids=lambda cls: cls.__name__)
@patiently
@given(data=st.data())
def test_every_outgoing_call_comes_back_by_its_kind(cls: type, data: st.DataObject) -> None:
    call = data.draw(values(cls))
    row = outbox.outgoing_row(call, 5.0, held_for=10.0)
    assert row["kind"] == cls.__name__ and row["room_sid"] is None
    assert same(outbox.payload(row["kind"], stored(row["payload"])), call)
    assert same(outbox.held(row).action, call) and outbox.held(row).outgoing


def test_fields_missing_from_older_rows_take_their_defaults_and_unknown_keys_are_ignored() -> None:
    newer = {"identity": "alice", "sid": "PA_1", "joined_at": 3, "mood": "calm"}  # `mood`: a newer field
    assert same(from_plain(Person, newer), Person("alice", "PA_1", 3.0))  # whole seconds, as the first rows
    assert same(from_plain(Room, {"sid": "RM_1", "name": "call"}), Room("RM_1", "call"))


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (Room, {"sid": "RM_1"}, "Room.name: missing"),
        (Room, {"sid": "R", "name": "c", "views": [{"phase": "asleep"}]}, "Room.views[0].phase: not a Phase"),
        (
            Room,
            {"sid": "RM_1", "name": "c", "people": [{"identity": "a", "sid": "P", "joined_at": "noon"}]},
            "Room.people[0].joined_at: expected float or int, got str",
        ),
        (
            Event,
            {"id": "E", "kind": "other", "name": "x", "created_at": None},
            "Event.created_at: expected int",
        ),
        (
            DispatchInfo,
            {"id": "AD_1", "agent_name": "a", "attributes": [["lang"]]},
            "DispatchInfo.attributes[0]: expected a list of 2",
        ),
        (Action, {"action": "Unheard", "attempt": 1}, "union: action 'Unheard' is none of ScheduleDeadline"),
        (Action, ["ScheduleDeadline"], "union: action None is none of"),
        (Action, {"action": ["ScheduleDeadline"]}, "union: action ['ScheduleDeadline'] is none of"),
        (Deadline, None, "Deadline: expected an object, got null"),
    ],
)
def test_what_cannot_be_read_says_where(cls: Any, data: Any, message: str) -> None:
    with pytest.raises(UnreadableRecord) as raised:
        from_plain(cls, data)
    assert str(raised.value).startswith(message)


def test_an_outbox_row_of_an_unknown_kind_cannot_be_read() -> None:
    with pytest.raises(UnreadableRecord, match="outbox kind 'Unheard' is none of ScheduleDeadline"):
        outbox.payload("Unheard", {"action": "Unheard"})


def test_a_field_type_the_decoder_does_not_know_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="cannot decode"):
        from_plain(dict[str, int], {})
    with pytest.raises(TypeError, match="cannot tell apart"):
        from_plain(int | str, 1)
