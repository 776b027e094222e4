"""Reading webhook bodies without protobuf's parser (`service.intake.body`) must give every body the
answer protobuf's `json_format.Parse` gives: the same reduced event, or a 400. The oracle below is the
reduction Warden used before, field by field on the parsed message, then bounded as Warden bounds what
it keeps (`workers.core.bounds`)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from google.protobuf.json_format import Parse, ParseError
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.protocol.webhook import WebhookEvent

from service.intake.body import _conforms, loads_webhook
from tests.support.helpers import FIXTURES, agent, body, person
from workers.adapters.webhook import AGENT_NAME_ATTRIBUTES, from_webhook_json
from workers.core import bounds
from workers.core.errors import MalformedEvent
from workers.core.events import INTERNAL_KINDS, Event, EventKind, Job, Participant

FIXTURE_BODIES = sorted(FIXTURES.glob("*.json"))


def oracle(raw: bytes) -> Event | None:
    """Parse, then read the message's fields (Warden's reduction before the fast path); None = 400."""
    try:
        proto = Parse(raw.decode("utf-8"), WebhookEvent(), ignore_unknown_fields=True)
    except (UnicodeDecodeError, ParseError, RecursionError, ValueError, SystemError):
        return None  # SystemError: protobuf's C parser on a lone surrogate in an enum's name
    if not proto.event:
        return None
    kind = EventKind(proto.event) if proto.event in EventKind._value2member_map_ else EventKind.OTHER
    kind = EventKind.OTHER if kind in INTERNAL_KINDS else kind
    room_sid, room_name, job = proto.room.sid, proto.room.name, None
    if proto.HasField("job"):
        state = proto.job.state
        job = Job(
            proto.job.id, proto.job.agent_name, proto.job.dispatch_id, int(state.status),
            state.participant_identity, state.error,
        )  # fmt: skip
        room_sid, room_name = room_sid or proto.job.room.sid, room_name or proto.job.room.name
    participant = None
    if proto.HasField("participant") and proto.participant.identity:
        info = proto.participant
        has_kind = kind in (
            EventKind.PARTICIPANT_JOINED,
            EventKind.PARTICIPANT_LEFT,
            EventKind.PARTICIPANT_CONNECTION_ABORTED,
        )
        name = next((info.attributes[a] for a in AGENT_NAME_ATTRIBUTES if info.attributes.get(a)), "")
        state = info.attributes.get("lk.agent.state", "") if has_kind and info.kind == 4 else ""
        state = state if state in ("initializing", "idle", "listening", "thinking", "speaking") else ""
        participant = Participant(
            info.identity, info.sid, int(info.kind) if has_kind else None, name, state=state
        )
    event = Event(
        bounds.event_id(proto.id, "fallback"), kind, bounds.clip(proto.event, bounds.EVENT_NAME),
        int(proto.created_at), room_sid, room_name, participant, proto.track.sid, job,
    )  # fmt: skip
    return _bounded(event)


def _bounded(event: Event) -> Event | None:
    """`event` with its free text clipped, or None (a 400) when a value kept exactly is over its bound."""
    person, job = event.participant, event.job
    exact = [(event.room_sid, bounds.SID), (event.room_name, bounds.ROOM_NAME), (event.track_sid, bounds.SID)]
    if person is not None:
        exact += [
            (person.identity, bounds.IDENTITY),
            (person.sid, bounds.SID),
            (person.agent_name, bounds.AGENT_NAME),
        ]
    if job is not None:
        exact += [(job.id, bounds.SID), (job.agent_name, bounds.AGENT_NAME), (job.dispatch_id, bounds.SID)]
        exact += [(job.participant_identity, bounds.IDENTITY)]
        event = replace(event, job=replace(job, error=bounds.clip(job.error, bounds.TEXT)))
    return None if any(bounds.problem(value, limit) for value, limit in exact) else event


def ours(raw: bytes) -> Event | None:
    try:
        return from_webhook_json(loads_webhook(raw), fallback_id="fallback")
    except MalformedEvent:
        return None


@pytest.mark.parametrize("path", FIXTURE_BODIES, ids=lambda p: p.stem)
def test_livekits_own_bodies_read_as_protobuf_reads_them_on_the_fast_path(path: Any) -> None:
    raw = path.read_bytes()
    assert _conforms(json.loads(raw), WebhookEvent.DESCRIPTOR), "an ordinary body should not need Parse"
    assert ours(raw) == oracle(raw) is not None


scalars = st.one_of(
    st.integers(-(2**65), 2**65),
    st.text(max_size=6),
    st.sampled_from(["12", "-3", "007", "1.0", "1e3", " 5", "AGENT", "JS_RUNNING", "STANDARD", "\ud800"]),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)
JOB_BODY = json.dumps(
    {
        "event": "participant_joined",
        "createdAt": 5,
        "job": {
            "id": "AJ_1",
            "agentName": "n",
            "state": {"status": "JS_RUNNING"},
            "room": {"sid": "RM_j", "name": "j"},
        },
        "participant": {"identity": "a", "kind": 4, "attributes": {"lk.agent.name": "n"}},
    }
).encode()
# Values near each field's type: what is accepted, and what is only just not.
INTEGERS = st.one_of(
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 2**31, 2**31 - 1, -(2**31) - 1, 2**63, 2**64, -1]),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["1.0", "1e3", " 5", "5_0", "+5", "", "0x10", "99999999999999999999999"]),
    st.floats(-1e6, 1e6),
    st.booleans(),
)
STRINGS = st.text(max_size=6) | st.sampled_from(["\ud800", "x\udfff", "é"]) | st.integers(0, 9)
ENUMS = st.sampled_from(
    ["AGENT", "STANDARD", "SIP", "ACTIVE", "JOINED", "JS_RUNNING", "NOPE", 0, 4, 99, -1, "4"]
)
TYPED = {
    **dict.fromkeys(["createdAt", "numDropped", "numParticipants", "creationTime", "joinedAt"], INTEGERS),
    **dict.fromkeys(["id", "sid", "name", "identity", "agentName", "dispatchId", "event"], STRINGS),
    **dict.fromkeys(["kind", "type"], ENUMS),
    "activeRecording": st.booleans() | st.sampled_from(["true", 1, 0]),
    "attributes": st.dictionaries(st.text(max_size=4), STRINGS | st.none(), max_size=2),
    "enabledCodecs": st.lists(st.fixed_dictionaries({"mime": STRINGS}), max_size=2) | json_values,
}
KEYS = {
    "": ["event", "id", "createdAt", "room", "participant", "track", "job", "numDropped", "egressInfo", "x"],
    "room": ["sid", "name", "numParticipants", "creationTime", "enabledCodecs", "activeRecording", "version"],
    "participant": ["identity", "sid", "kind", "state", "attributes", "joinedAt", "permission", "tracks"],
    "job": ["id", "agentName", "dispatchId", "state", "room", "type", "participant"],
}


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A realistic body with some values replaced by arbitrary JSON, keys added or duplicated."""
    data = json.loads(
        draw(
            st.sampled_from(
                [
                    body("participant_joined", id="EV_1", created_at=1767225600, participant=person("alice")),
                    body("participant_left", id="EV_2", created_at=1767225601, participant=agent("agent-A")),
                    body("room_started", id="EV_3", created_at=1767225602),
                    JOB_BODY,
                ]
            )
        )
    )
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(sorted(KEYS)))
        target = data if where == "" else data.setdefault(where, {})
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(KEYS[where]))
        target[key] = draw(
            TYPED.get(key, json_values) | json_values if draw(st.booleans()) else TYPED.get(key, json_values)
        )
    text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()) and text.startswith('{"'):
        text = '{"id": "dup", ' + text[1:]  # a duplicate key, when "id" is there already
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=1500, deadline=None)
@given(raw=mutated_bodies() | st.binary(max_size=40))
def test_every_body_gets_protobufs_answer(raw: bytes) -> None:
    assert ours(raw) == oracle(raw)


@pytest.mark.parametrize(
    ("kind", "state", "kept"),
    [
        (4, "initializing", "initializing"),
        (4, "thinking", "thinking"),
        (4, "asleep", ""),
        (0, "thinking", ""),
    ],
)
def test_an_agents_own_state_is_read_from_its_attributes_when_the_webhook_carries_them(
    kind: int, state: str, kept: str
) -> None:
    body = {
        "event": "participant_joined",
        "id": "EV_state",
        "createdAt": 5,
        "room": {"sid": "RM_s", "name": "s"},
        "participant": {"identity": "a", "kind": kind, "attributes": {"lk.agent.state": state}},
    }
    event = from_webhook_json(body, fallback_id="x")
    assert event.participant is not None and event.participant.state == kept
