"""Service levels (issue 29) through the pure machine: what counts good, bad, and not at all, for each
expected agent of a room, counted once when the room's fate for it is known (`workers.core.sli`)."""

from __future__ import annotations

from dataclasses import replace

from workers.core import sli
from workers.core.events import DispatchInfo, Event, EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.machine import transition
from workers.core.room import Action, CheckPresence, Policy, Room, ScheduleDeadline
from workers.core.rules import Rule, Rules

AGENT = "assistant"
ALICE = Participant("alice", "PA_alice", int(ParticipantKind.STANDARD), "", 100.0)
POLICY = Policy(AGENT, join_sla=10.0)
BOB = Participant("bob", "PA_bob", int(ParticipantKind.STANDARD), "", 100.0)


def agent(name: str = AGENT) -> Participant:
    return Participant(f"agent-{name}", f"PA_{name}", int(ParticipantKind.AGENT), name)


class Life:
    """A room lived through event by event; what each step newly counts is kept, as the store does."""

    def __init__(self, policy: Policy = POLICY, rules: tuple[Rule, ...] = ()) -> None:
        self.rules = Rules.of(rules, policy)
        self.room = Room("RM_1", "call-1")
        self.actions: list[Action] = []
        self.counted: list[sli.Outcome] = []
        self._n = 0

    def _apply(self, event: Event) -> None:
        decision = transition(self.room, event, now=event.at, rules=self.rules)
        self.counted += sli.outcomes(self.room, decision.room)
        self.room = decision.room
        self.actions += decision.actions

    def webhook(self, kind: EventKind, at: int, who: Participant | None = None) -> None:
        self._n += 1
        self._apply(Event(f"EV_{self._n}", kind, str(kind), at, "RM_1", "call-1", who))

    def join(self, at: int, who: Participant = ALICE) -> None:
        self.webhook(EventKind.PARTICIPANT_JOINED, at, replace(who, joined_at=float(at)))

    def leave(self, at: int, who: Participant = ALICE) -> None:
        self.webhook(EventKind.PARTICIPANT_LEFT, at, who)

    def finish(self, at: int) -> None:
        self.webhook(EventKind.ROOM_FINISHED, at)

    def deadline_passes(self, agent_name: str = AGENT) -> None:
        deadline = next(
            a for a in reversed(self.actions) if isinstance(a, ScheduleDeadline) and a.agent == agent_name
        )
        fact = Fact(deadline.attempt, deadline.at, agent=agent_name)
        self._apply(internal(EventKind.DEADLINE_PASSED, f"d{deadline.attempt}", "RM_1", "call-1", fact))

    def nobody_there(self, at: float, agent_name: str = AGENT) -> None:
        """LiveKit answers Warden's check: the people, no agent (so Warden re-dispatches)."""
        check = next(
            a for a in reversed(self.actions) if isinstance(a, CheckPresence) and a.agent == agent_name
        )
        fact = Fact(check.attempt, at, True, (ALICE,), (), agent=agent_name)
        self._apply(internal(EventKind.PRESENCE_OBSERVED, f"p{check.attempt}", "RM_1", "call-1", fact))

    def dispatched(self, at: float, agent_name: str = AGENT) -> None:
        view = self.room.view(agent_name)
        assert view is not None and view.deadline is not None
        fact = Fact(view.deadline.attempt, at, dispatch_id="AD_2", agent=agent_name)
        self._apply(internal(EventKind.AGENT_DISPATCHED, f"a{at}", "RM_1", "call-1", fact))

    def told(self) -> list[tuple[str, str, str, float, str]]:
        return [
            (o.agent, o.outcome(sli.ON_TIME), o.outcome(sli.SERVED), o.decided_at, o.how)
            for o in self.counted
        ]


def test_an_agent_in_time_is_good_twice_and_counted_once() -> None:
    life = Life()
    life.join(100)
    life.webhook(EventKind.PARTICIPANT_JOINED, 106, agent())
    life.leave(130)
    life.webhook(EventKind.PARTICIPANT_LEFT, 131, agent())
    life.finish(140)
    assert life.told() == [(AGENT, "good", "good", 106.0, "on_time")]


def test_an_agent_at_the_sla_s_last_instant_is_on_time_one_later_is_not() -> None:
    at_the_end, late = Life(), Life()
    for life, came in ((at_the_end, 110), (late, 111)):
        life.join(100)
        life.webhook(EventKind.PARTICIPANT_JOINED, came, agent())
    assert at_the_end.told() == [(AGENT, "good", "good", 110.0, "on_time")]
    assert late.told() == [(AGENT, "bad", "good", 111.0, "late")]


def test_an_agent_warden_brings_is_served_not_on_time() -> None:
    life = Life()
    life.join(100)
    life.deadline_passes()
    life.nobody_there(110.2)
    life.dispatched(110.5)
    assert life.counted == []  # its fate is not known yet: the room is open, the agent may come
    life.webhook(EventKind.PARTICIPANT_JOINED, 113, agent())
    life.finish(200)
    assert life.told() == [(AGENT, "bad", "good", 113.0, "redispatched")]


def test_a_room_that_finishes_without_its_agent_after_the_sla_is_bad_twice() -> None:
    life = Life()
    life.join(100)
    life.leave(125)
    assert life.counted == []  # the room is still open
    life.finish(140)
    assert life.told() == [(AGENT, "bad", "bad", 140.0, "never")]


def test_a_room_that_ends_before_the_sla_ran_out_is_not_counted() -> None:
    left_early, finished_at_the_end = Life(), Life()
    left_early.join(100)
    left_early.leave(105)
    left_early.finish(130)
    finished_at_the_end.join(100)
    finished_at_the_end.finish(110)  # at the SLA's last instant: the agent could still have come
    assert left_early.counted == [] and finished_at_the_end.counted == []


def test_a_later_wait_is_judged_on_its_own_sla() -> None:
    life = Life()
    life.join(100)
    life.leave(104)  # in time: not counted
    life.join(300, BOB)
    life.webhook(EventKind.PARTICIPANT_JOINED, 309, agent())
    assert life.told() == [(AGENT, "good", "good", 309.0, "on_time")]


def test_a_missed_sla_stays_missed_when_people_leave_and_come_back() -> None:
    life = Life()
    life.join(100)
    life.leave(115)  # waited past the SLA
    life.join(120, BOB)
    life.webhook(EventKind.PARTICIPANT_JOINED, 121, agent())
    assert life.told() == [(AGENT, "bad", "good", 121.0, "late")]


def test_an_agent_there_before_the_people_counts_when_they_come() -> None:
    life = Life()
    life.webhook(EventKind.PARTICIPANT_JOINED, 90, agent())
    assert life.counted == []  # nobody came for it yet
    life.join(100)
    assert life.told() == [(AGENT, "good", "good", 100.0, "on_time")]


def test_a_fallback_agent_does_not_serve_and_is_not_counted_itself() -> None:
    life = Life(Policy(AGENT, join_sla=10.0, max_redispatches=0, fallback_agent="apology"))
    life.join(100)
    life.deadline_passes()
    life.nobody_there(110.2)  # no re-dispatch left: failed, the fallback taken
    life.webhook(EventKind.PARTICIPANT_JOINED, 112, agent("apology"))
    life.leave(150)
    life.finish(160)
    assert life.told() == [(AGENT, "bad", "bad", 160.0, "never")]
    assert [v.agent for v in life.room.views] == [AGENT]


def test_several_agents_in_one_room_are_counted_each_for_itself() -> None:
    life = Life(Policy(join_sla=10.0), (Rule(1, agents=(AGENT, "notetaker")),))
    life.join(100)
    life.webhook(EventKind.PARTICIPANT_JOINED, 104, agent())
    life.leave(150)
    life.finish(160)
    assert life.told() == [
        (AGENT, "good", "good", 104.0, "on_time"),
        ("notetaker", "bad", "bad", 160.0, "never"),
    ]


def test_a_room_expecting_no_agent_counts_nothing() -> None:
    life = Life(Policy(join_sla=10.0))  # no rule, no agent name: LiveKit is asked which agents it expects
    life.join(100)
    life.deadline_passes("")
    check = next(a for a in reversed(life.actions) if isinstance(a, CheckPresence))
    fact = Fact(check.attempt, 110.2, True, (ALICE,), ())  # no dispatch: it expects no agent
    life._apply(internal(EventKind.PRESENCE_OBSERVED, "p1", "RM_1", "call-1", fact))
    life.leave(150)
    life.finish(160)
    assert life.room.views == () and life.counted == []


def test_an_agent_learned_from_the_room_s_own_watch_is_judged_from_the_first_person() -> None:
    life = Life(Policy(join_sla=10.0))
    life.join(100)
    life.deadline_passes("")
    check = next(a for a in reversed(life.actions) if isinstance(a, CheckPresence))
    dispatch = DispatchInfo("AD_1", AGENT, created_at=99.0)
    listing = Fact(check.attempt, 112.0, True, (ALICE, replace(agent(), joined_at=111.0)), (dispatch,))
    life._apply(internal(EventKind.PRESENCE_OBSERVED, "p1", "RM_1", "call-1", listing))
    assert life.told() == [(AGENT, "bad", "good", 111.0, "late")]


def test_an_agent_warden_brought_is_late_even_if_its_webhook_s_whole_second_is_within_the_sla() -> None:
    life = Life(Policy(AGENT, join_sla=1.5))
    life.join(100)  # at 100.9 in truth: LiveKit stamps whole seconds
    life.deadline_passes()  # 101.5
    life.nobody_there(101.6)
    life.dispatched(101.7)
    life.webhook(EventKind.PARTICIPANT_JOINED, 101, agent())  # 101.9 in truth, stamped 101
    assert life.told() == [(AGENT, "bad", "good", 101.0, "redispatched")]


def test_a_room_stored_before_service_levels_counts_nothing_it_had_decided_and_learns_its_sla() -> None:
    """Rooms written before `due_at` existed: one whose agent had come counts nothing at its next event;
    one still waiting takes its SLA's end from its JOIN deadline at its next event."""
    served, waiting = Life(), Life()
    served.join(100)
    served.webhook(EventKind.PARTICIPANT_JOINED, 104, agent())
    waiting.join(100)
    for life in (served, waiting):
        life.room = life.room.put(replace(life.room.views[0], due_at=None))  # as an older version stored it
        life.counted = []
    served.leave(150)
    served.finish(160)
    waiting.join(105, BOB)
    assert waiting.room.views[0].due_at == 110.0
    waiting.webhook(EventKind.PARTICIPANT_JOINED, 112, agent())
    assert served.counted == [] and waiting.told() == [(AGENT, "bad", "good", 112.0, "late")]
