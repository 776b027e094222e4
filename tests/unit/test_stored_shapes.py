"""Rows and queued jobs already written must still load after an upgrade. Each shape below is written out
exactly as a version of Warden stored it (made by that version's own code, then through JSON as the
database hands it back), with the object it must decode to: the first rooms (whole seconds, no
recovery), rooms from before a room had a view per agent, rooms with views (the previous version, whose
timers may still be queued) and as this version writes them, events, outbox notices and outgoing calls
from then and from now, and the argument of a queued `escalate` job as ARQ unpickles it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from service.api.rooms import room_summary
from workers.core import stored
from workers.core.actions import pending_actions
from workers.core.events import DispatchInfo, Event, EventKind, Fact, Job, Participant, internal
from workers.core.machine import transition
from workers.core.outgoing import Alert, DeployHook, IncidentEvent
from workers.core.plain import from_plain
from workers.core.room import (
    Agent,
    AgentView,
    CheckPresence,
    Deadline,
    Decision,
    Dispatch,
    Person,
    Phase,
    Policy,
    Reason,
    Recovery,
    ReportBreach,
    ReportFailed,
    ReportRecovered,
    Room,
    ScheduleDeadline,
)
from workers.core.rules import Rules
from workers.store import outbox
from workers.store.outbox import Notice


def same(decoded: Any, expected: Any) -> bool:
    """Equal, and of the same types all the way down (`repr` tells a StrEnum member from its string, a
    tuple from a list, 1.0 from 1)."""
    return bool(decoded == expected) and repr(decoded) == repr(expected)


# The scaffold's room row (82e0760): times in whole seconds, nothing about recovery yet.
FIRST_ROOM = {
    "sid": "RM_first", "name": "call-0", "phase": "agent_active",
    "people": [{"identity": "alice", "sid": "PA_a", "joined_at": 10}],
    "agents": [{"identity": "agent-x", "sid": "PA_x", "name": "", "joined_at": 12, "active_at": 13}],
    "started_at": 9, "finished_at": None, "first_person_at": 10, "agent_joined_at": 12, "waiting_since": None,
    "updated_at": 13.5,
}  # fmt: skip
FIRST_PRESENCE = {
    "people": (Person("alice", "PA_a", 10.0),),
    "agents": (Agent("agent-x", "PA_x", "", 12.0, 13.0),),
    "started_at": 9.0,
    "first_person_at": 10.0,
    "updated_at": 13.5,
}
FIRST_PART = AgentView(phase=Phase.AGENT_ACTIVE, agent_joined_at=12.0)

# A room row from before views (c5c4330^): one room, recovering, no `agent`, `sources`, `sip`.
PRE_VIEWS_ROOM = {
    "sid": "RM_old", "name": "call-1", "phase": "waiting",
    "people": [{"identity": "alice", "sid": "PA_a", "joined_at": 100.5}],
    "agents": [{"identity": "agent-x", "sid": "PA_x", "name": "notetaker", "joined_at": 90.0,
                "active_at": 95.0}],
    "started_at": 99.0, "finished_at": None, "first_person_at": 100.5, "agent_joined_at": None,
    "waiting_since": 100.5, "updated_at": 116.0,
    "deadline": {"attempt": 2, "at": 130.5, "reason": "rejoin"},
    "attempt": 2, "recovery": "checking", "redispatches": 1, "stale_dispatches": ["AD_1"],
    "dispatch_metadata": "{\"k\": 1}", "dispatch_id": "AD_2", "evict": "", "error": "boom",
    "dispatched_on_start": False,
}  # fmt: skip
PRE_VIEWS_PRESENCE: dict[str, Any] = {
    "people": (Person("alice", "PA_a", 100.5),),
    "agents": (Agent("agent-x", "PA_x", "notetaker", 90.0, 95.0),),
    "started_at": 99.0,
    "first_person_at": 100.5,
    "updated_at": 116.0,
    "attempt": 2,
}
PRE_VIEWS_PART = AgentView(
    phase=Phase.WAITING,
    waiting_since=100.5,
    deadline=Deadline(2, 130.5, Reason.REJOIN),
    recovery=Recovery.CHECKING,
    redispatches=1,
    stale_dispatches=("AD_1",),
    dispatch_metadata='{"k": 1}',
    dispatch_id="AD_2",
    error="boom",
)

# A room row with views (the version before this one): the base's fields, then `views` and `learned`.
ROOM_WITH_VIEWS = {
    "sid": "RM_new", "name": "support-2", "phase": "agent_lost",
    "people": [{"identity": "+15550100", "sid": "PA_c", "joined_at": 200.0}], "agents": [],
    "started_at": 199.0, "finished_at": None, "first_person_at": 200.0, "agent_joined_at": None,
    "waiting_since": None, "updated_at": 230.0, "deadline": None, "attempt": 3, "recovery": "none",
    "redispatches": 0, "stale_dispatches": [], "dispatch_metadata": "", "dispatch_id": "", "evict": "",
    "error": "", "dispatched_on_start": False, "agent": "", "sources": [], "dispatch_attributes": [],
    "sip": True,
    "views": [{
        "sid": "RM_new", "name": "support-2", "phase": "agent_lost",
        "people": [{"identity": "+15550100", "sid": "PA_c", "joined_at": 200.0}], "agents": [],
        "started_at": 199.0, "finished_at": None, "first_person_at": 200.0, "agent_joined_at": 205.0,
        "waiting_since": None, "updated_at": 230.0,
        "deadline": {"attempt": 4, "at": 250.0, "reason": "confirm"},
        "attempt": 4, "recovery": "redispatching", "redispatches": 1, "stale_dispatches": ["AD_3"],
        "dispatch_metadata": "m", "dispatch_id": "AD_4", "evict": "agent-y", "error": "",
        "dispatched_on_start": True, "agent": "voice", "sources": ["rule", "dispatch"],
        "dispatch_attributes": [["lang", "fr"]], "sip": True,
    }],
    "learned": True,
}  # fmt: skip
VOICE = AgentView(
    "voice",
    ("rule", "dispatch"),
    Phase.AGENT_LOST,
    agent_joined_at=205.0,
    deadline=Deadline(4, 250.0, Reason.CONFIRM),
    recovery=Recovery.REDISPATCHING,
    redispatches=1,
    stale_dispatches=("AD_3",),
    dispatch_metadata="m",
    dispatch_attributes=(("lang", "fr"),),
    dispatch_id="AD_4",
    evict="agent-y",
    dispatched_on_start=True,
)
WITH_VIEWS = Room(
    "RM_new",
    "support-2",
    people=(Person("+15550100", "PA_c", 200.0),),
    started_at=199.0,
    first_person_at=200.0,
    sip=True,
    updated_at=230.0,
    attempt=4,  # the highest any part had (the base's count lagged behind before d1506a5)
    watch=None,
    views=(VOICE,),
)

# A room row as this version writes it: who is there, its own watch (null: its agents are known), parts.
ROOM_NOW = {
    "sid": "RM_new", "name": "support-2",
    "people": [{"identity": "+15550100", "sid": "PA_c", "joined_at": 200.0}], "agents": [],
    "started_at": 199.0, "finished_at": None, "first_person_at": 200.0, "sip": True, "updated_at": 230.0,
    "attempt": 4, "watch": None,
    "views": [{
        "agent": "voice", "sources": ["rule", "dispatch"], "phase": "agent_lost", "waiting_since": None,
        "agent_joined_at": 205.0, "deadline": {"attempt": 4, "at": 250.0, "reason": "confirm"},
        "recovery": "redispatching", "redispatches": 1, "stale_dispatches": ["AD_3"],
        "dispatch_metadata": "m", "dispatch_attributes": [["lang", "fr"]], "dispatch_id": "AD_4",
        "evict": "agent-y", "error": "", "dispatched_on_start": True,
    }],
}  # fmt: skip


def _fired(room: Room, attempt: int, at: float) -> Decision:
    """The room's timer `deadline:{sid}:{attempt}`, queued before the upgrade, run after it."""
    fact = Fact(attempt, at)
    fired = internal(
        EventKind.DEADLINE_PASSED, f"deadline_passed:{room.sid}:{attempt}", room.sid, room.name, fact
    )
    return transition(room, fired, now=at, rules=Rules.of((), Policy("notetaker")))


def test_the_first_rooms_still_load() -> None:
    assert same(stored.from_dict(FIRST_ROOM), Room("RM_first", "call-0", **FIRST_PRESENCE, watch=FIRST_PART))


def test_a_room_from_before_views_is_the_rooms_own_watch_or_warden_agent_names_part() -> None:
    watching = Room("RM_old", "call-1", **PRE_VIEWS_PRESENCE, watch=PRE_VIEWS_PART)
    assert same(stored.from_dict(PRE_VIEWS_ROOM), watching)
    setting = AgentView(**{**vars(PRE_VIEWS_PART), "agent": "notetaker", "sources": ("setting",)})
    expecting = Room("RM_old", "call-1", **PRE_VIEWS_PRESENCE, watch=None, views=(setting,))
    assert same(stored.from_dict(PRE_VIEWS_ROOM, legacy_agent="notetaker"), expecting)


def test_a_room_from_before_views_keeps_its_queued_timer_and_its_check_under_way() -> None:
    waiting = {**PRE_VIEWS_ROOM, "agents": [], "recovery": "none"}  # for its agent, deadline 2 set
    room = stored.from_dict(waiting, legacy_agent="notetaker")
    assert _fired(room, 2, 130.5).actions == (CheckPresence(2, "notetaker"),)
    checking = stored.from_dict(PRE_VIEWS_ROOM, legacy_agent="notetaker")
    assert pending_actions(checking.views[0]) == (CheckPresence(2, "notetaker"),)  # the retried job asks


def test_a_room_with_views_is_its_presence_and_each_agents_part() -> None:
    assert same(stored.from_dict(ROOM_WITH_VIEWS), WITH_VIEWS)
    assert same(stored.from_dict(ROOM_WITH_VIEWS, legacy_agent="notetaker"), WITH_VIEWS)
    join = {"attempt": 3, "at": 215.0, "reason": "join"}
    room = stored.from_dict({**ROOM_WITH_VIEWS, "learned": False, "deadline": join})  # still watching
    assert room.watch == AgentView(phase=Phase.AGENT_LOST, deadline=Deadline(3, 215.0, Reason.JOIN))
    assert (room.for_attempt(3), room.for_attempt(4)) == (room.watch, VOICE)


def test_a_room_as_written_now_loads_as_it_was() -> None:
    assert same(stored.from_dict(ROOM_NOW), WITH_VIEWS)
    assert same(stored.from_dict(json.loads(json.dumps(stored.to_dict(WITH_VIEWS)))), WITH_VIEWS)


def test_a_room_stored_before_agents_had_a_state_reads_as_one_whose_agent_never_published_it() -> None:
    """Agents stored before issue 26 have no `state` / `state_since`: as if the agent had never published
    `lk.agent.state` (judged as before); a room written now keeps its agent's state, its since, and a
    stuck deadline."""
    assert stored.from_dict(FIRST_ROOM).agents == (Agent("agent-x", "PA_x", "", 12.0, 13.0, "", None),)
    stuck = Agent("agent-x", "PA_x", "voice", 210.0, None, "initializing", 212.5)
    part = AgentView(
        "voice", ("rule",), Phase.AGENT_PRESENT, deadline=Deadline(5, 242.5, Reason.STUCK_INITIALIZING)
    )
    now = replace(WITH_VIEWS, agents=(stuck,), attempt=5, views=(part,))
    assert same(stored.from_dict(json.loads(json.dumps(stored.to_dict(now)))), now)


def test_a_room_stored_before_issue_23_shows_its_counts_and_its_people_truly() -> None:
    """Written before re-dispatches were counted by attempt (`redispatched`) and before no_agent_expected:
    the part shows its incident's count, and a room with people that expects no agent is not idle."""
    room = stored.from_dict(ROOM_NOW)
    assert room.views[0].redispatched == ()
    assert room_summary(room)["recovery"]["redispatches"] == 1
    quiet = stored.from_dict({**ROOM_NOW, "views": []})
    assert (quiet.learned, quiet.summary().phase) == (True, Phase.NO_AGENT_EXPECTED)
    assert same(stored.from_dict(json.loads(json.dumps(stored.to_dict(quiet)))), quiet)


# Events as the log and the queue held them before views (no `on_behalf`, `attributes`, `agent`, `wait`)...
PRE_VIEWS_EVENTS = [
    {
        "id": "warden-1", "kind": "presence_observed", "name": "presence_observed", "created_at": 131,
        "room_sid": "RM_old", "room_name": "call-1", "participant": None, "track_sid": "", "job": None,
        "fact": {
            "attempt": 2, "at": 131.25, "room_exists": True,
            "participants": [{"identity": "alice", "sid": "PA_a", "kind": 0, "agent_name": "",
                              "joined_at": 100.0}],
            "dispatches": [{"id": "AD_2", "agent_name": "notetaker", "metadata": "{}", "created_at": 101.0,
                            "statuses": [1]}],
            "dispatch_id": "", "error": "",
        },
    },
    {
        "id": "EV_1", "kind": "agent_job_started", "name": "agent_job_started", "created_at": 1700000000,
        "room_sid": "RM_old", "room_name": "call-1",
        "participant": {"identity": "agent-x", "sid": "PA_x", "kind": 4, "agent_name": "notetaker",
                        "joined_at": 90.0},
        "track_sid": "",
        "job": {"id": "AJ_1", "agent_name": "notetaker", "dispatch_id": "AD_2", "status": 1,
                "participant_identity": "agent-x", "error": ""},
        "fact": None,
    },
]  # fmt: skip
# ... and as the current code writes them.
EVENT_NOW = {
    "id": "warden-9", "kind": "agent_restarted", "name": "agent_restarted", "created_at": 240,
    "room_sid": "RM_new", "room_name": "support-2",
    "participant": {"identity": "avatar", "sid": "PA_v", "kind": 4, "agent_name": "voice", "joined_at": 210.0,
                    "on_behalf": "agent-y"},
    "track_sid": "", "job": None,
    "fact": {
        "attempt": 0, "at": 240.5, "room_exists": True, "participants": [],
        "dispatches": [{"id": "AD_4", "agent_name": "voice", "metadata": "m", "created_at": 230.0,
                        "statuses": [0, 1], "attributes": [["lang", "fr"]]}],
        "dispatch_id": "", "error": "", "agent": "voice", "wait": 12.5,
    },
}  # fmt: skip


PRE_VIEWS_EXPECTED = [
    Event(
        "warden-1",
        EventKind.PRESENCE_OBSERVED,
        "presence_observed",
        131,
        "RM_old",
        "call-1",
        fact=Fact(
            2,
            131.25,
            True,
            (Participant("alice", "PA_a", 0, "", 100.0),),
            (DispatchInfo("AD_2", "notetaker", "{}", 101.0, (1,)),),
        ),
    ),
    Event(
        "EV_1",
        EventKind.AGENT_JOB_STARTED,
        "agent_job_started",
        1700000000,
        "RM_old",
        "call-1",
        Participant("agent-x", "PA_x", 4, "notetaker", 90.0),
        job=Job("AJ_1", "notetaker", "AD_2", 1, "agent-x"),
    ),
]
EVENT_NOW_EXPECTED = Event(
    "warden-9",
    EventKind.AGENT_RESTARTED,
    "agent_restarted",
    240,
    "RM_new",
    "support-2",
    Participant("avatar", "PA_v", 4, "voice", 210.0, "agent-y"),
    fact=Fact(
        at=240.5,
        dispatches=(DispatchInfo("AD_4", "voice", "m", 230.0, (0, 1), (("lang", "fr"),)),),
        agent="voice",
        wait=12.5,
    ),
)


@pytest.mark.parametrize(
    ("row", "expected"),
    [*zip(PRE_VIEWS_EVENTS, PRE_VIEWS_EXPECTED, strict=True), (EVENT_NOW, EVENT_NOW_EXPECTED)],
    ids=["presence-before-views", "job-before-views", "restart-now"],
)
def test_events_from_before_views_and_from_now_still_load(row: dict[str, Any], expected: Event) -> None:
    assert same(from_plain(Event, row), expected)


# Outbox rows: (kind column, payload) as written before views (no `agent`) and now. Outgoing calls have
# no room (`room_sid` NULL); the kind alone says what each row is.
OUTBOX_ROWS: list[tuple[str, dict[str, Any], object]] = [
    ("ScheduleDeadline", {"action": "ScheduleDeadline", "attempt": 3, "at": 150.0, "reason": "confirm"},
     ScheduleDeadline(3, 150.0, Reason.CONFIRM)),
    ("Dispatch", {"action": "Dispatch", "agent_name": "notetaker"}, Dispatch("notetaker")),
    ("Escalate", {"action": "Escalate", "reason": "redispatch_failed", "redispatches": 2},
     ReportFailed("redispatch_failed", 2)),  # named before issue 22
    ("ReportBreach", {"action": "ReportBreach", "reason": "join"}, ReportBreach("join")),
    ("ReportRecovered", {"action": "ReportRecovered", "outcome": "agent_active"},
     ReportRecovered("agent_active")),
    ("Alert", {"action": "Alert", "incident_id": "7", "step": "opened", "text": ":rotating_light: x"},
     Alert("7", "opened", ":rotating_light: x")),
    ("DeployHook",
     {"action": "DeployHook", "incident_id": "7", "agent_name": "notetaker", "reason": "outage",
      "rooms": ["RM_old"]},
     DeployHook("7", "notetaker", "outage", ("RM_old",))),
    ("ScheduleDeadline",
     {"action": "ScheduleDeadline", "attempt": 5, "at": 260.0, "reason": "active", "agent": "voice"},
     ScheduleDeadline(5, 260.0, Reason.ACTIVE, "voice")),
    ("Escalate", {"action": "Escalate", "reason": "redispatch_failed", "redispatches": 2, "agent": "voice"},
     ReportFailed("redispatch_failed", 2, "voice")),
    ("ReportFailed",
     {"action": "ReportFailed", "reason": "redispatch_failed", "redispatches": 2, "agent": "voice"},
     ReportFailed("redispatch_failed", 2, "voice")),
    ("ReportBreach", {"action": "ReportBreach", "reason": "join", "agent": "voice"},
     ReportBreach("join", "voice")),
    ("ReportRecovered", {"action": "ReportRecovered", "outcome": "agent_active", "agent": "voice"},
     ReportRecovered("agent_active", "voice")),
    ("IncidentEvent",
     {"action": "IncidentEvent", "route": "pagerduty", "incident_id": "8", "step": "opened",
      "agent_name": "voice", "text": ":rotating_light: z", "at": 241.0, "rooms": ["RM_new"],
      "doing": "restarting"},
     IncidentEvent("pagerduty", "8", "opened", "voice", ":rotating_light: z", 241.0, ("RM_new",),
                   "restarting")),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "payload", "expected"), OUTBOX_ROWS, ids=lambda v: str(v)[:24])
def test_outbox_rows_of_every_version_load_by_their_kind(
    kind: str, payload: dict[str, Any], expected: object
) -> None:
    assert outbox.payload(kind, payload) == expected
    assert type(outbox.payload(kind, payload)) is type(expected)


def test_a_queued_escalate_job_loads_as_arq_unpickles_its_argument() -> None:
    """`escalate(notice_id, room_sid, action)`: `action` is `action_to_dict` of the notice, pickled, so
    enums stay enums (a breach's reason is the deadline's `Reason`)."""
    queued = {"action": "ReportBreach", "reason": Reason.JOIN, "agent": "voice"}
    notice: Notice = from_plain(Notice, queued)
    assert notice == ReportBreach("join", "voice")
    old = {"action": "Escalate", "reason": "redispatch_failed", "redispatches": 2}
    assert from_plain(Notice, old) == ReportFailed("redispatch_failed", 2)  # its name before issue 22
