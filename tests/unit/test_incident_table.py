"""The whole (state, signal) table of the incident machine, walked pair by pair on the samples that tell
each rule's cases apart (`workers.core.incident_samples`): what every pair does to the incident and
what it decides, written by hand from the rules in `workers/core/incident.py`."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest

from workers.core.alerts import Notify
from workers.core.incident import (
    CLOUD,
    INCIDENT,
    Decision,
    DeploymentRestart,
    FreshStarts,
    IncidentState,
    Note,
    Restart,
    Signal,
    Step,
)
from workers.core.incident_samples import AT, incident_samples

S, G = IncidentState, Signal
CASES = [(s, g, what) for s, g in product(IncidentState, Signal) for what in incident_samples(s, g)]


def said(decision: Decision) -> str:
    """A decision as a short line: its kind, and what tells it apart."""
    match decision:
        case Note(action=action):
            return f"Note {action}"
        case Notify(route=route, step=step):
            return f"Notify {route} {step}"
        case Restart(legs=legs):
            return f"Restart {'+'.join(legs)}"
        case FreshStarts(wait=wait):
            return f"FreshStarts {wait}"
    return type(decision).__name__


OPENED = ("Note opened", "Notify slack opened", "Notify webhook opened")
RESTART = ("Restart cloud",)
SHARED = ("Note restart",)
LANDED = ("FreshStarts None", "Notify webhook restarted")  # Slack is not told: news for routers only
FAILED = ("Notify slack restart-failed", "Notify webhook restart-failed")
FOLLOWED = ("Note follow-up", "Notify slack followup", "Notify webhook followup")
RESOLVED = ("Note resolved", "Notify slack resolved", "Notify webhook resolved", "Resolve")

# (state, signal, what the sample says) -> (state after, what it decides). Anything not listed
# changes nothing and decides nothing.
CHANGED: dict[tuple[IncidentState, Signal, str], tuple[IncidentState, tuple[str, ...]]] = {}
for _signal in (G.OUTAGE, G.ROOM_FAILED, G.CANARY_FAILED):
    _joined = ("Note canary",) if _signal is G.CANARY_FAILED else ()  # marked, said once
    for _state, _said in ((S.NEW, OPENED), (S.OPEN, _joined)):
        CHANGED |= {
            (_state, _signal, "deployment free"): (S.RESTARTING, _said + RESTART),
            (_state, _signal, "restart under way"): (S.RESTARTING, _said + SHARED),
            (_state, _signal, "its caller died"): (S.RESTARTING, _said + RESTART),
            (_state, _signal, "landed just now"): (S.RESTARTED, _said + LANDED),
            (_state, _signal, "nothing to restart"): (S.NOT_RESTARTED, (*_said, "Note restart")),
        }
    CHANGED[(S.NEW, _signal, "landed lately")] = (S.OPEN, OPENED)  # waits out the cooldown
    CHANGED[(S.NEW, _signal, "failed lately")] = (S.OPEN, OPENED)
    if _joined:
        CHANGED[(S.OPEN, _signal, "landed lately")] = (S.OPEN, _joined)
        CHANGED[(S.OPEN, _signal, "failed lately")] = (S.OPEN, _joined)
CHANGED |= {
    (S.RESTARTED, G.ROOM_FAILED, "after the restart"): (S.ROLLING_BACK, (*FOLLOWED, "Rollback")),
    (S.RESTARTED, G.ROOM_FAILED, "no rollback"): (S.FOLLOWED_UP, FOLLOWED),
    (S.OPEN, G.SWEPT, "restart under way"): (S.RESTARTING, SHARED),
    (S.OPEN, G.SWEPT, "its caller died"): (S.RESTARTING, RESTART),
    (S.OPEN, G.SWEPT, "restart landed"): (S.RESTARTED, LANDED),
    (S.OPEN, G.SWEPT, "cooldown over"): (S.RESTARTING, RESTART),
    (S.RESTARTING, G.SWEPT, "its caller died"): (S.RESTARTING, RESTART),
    (S.RESTARTING, G.SWEPT, "restart landed"): (S.RESTARTED, LANDED),
    (S.RESTARTING, G.SWEPT, "restart failed"): (S.NOT_RESTARTED, FAILED),
    (S.ROLLING_BACK, G.SWEPT, "its caller died"): (S.ROLLING_BACK, ("Rollback",)),
    (S.RESTARTING, G.RESTART_FAILED, ""): (S.NOT_RESTARTED, FAILED),
    (S.ROLLING_BACK, G.ROLLBACK_DONE, "landed"): (S.FOLLOWED_UP, ("FreshStarts None",)),
    (S.ROLLING_BACK, G.ROLLBACK_DONE, "refused"): (S.FOLLOWED_UP, ()),
}
for _state in (S.OPEN, S.RESTARTING, S.NOT_RESTARTED):  # a landing counts, even after a failure
    CHANGED[(_state, G.RESTART_LANDED, "Cloud restart")] = (S.RESTARTED, (*LANDED, "WatchComeback"))
    CHANGED[(_state, G.RESTART_LANDED, "deploy hook")] = (S.RESTARTED, LANDED)
for _state in (S.RESTARTED, S.ROLLING_BACK, S.FOLLOWED_UP):
    CHANGED[(_state, G.RUNNING_AGAIN, "")] = (_state, ("FreshStarts 0.0",))
for _state in set(IncidentState) - {S.NEW, S.RESOLVED}:
    CHANGED[(_state, G.RECOVERED, "")] = (S.RESOLVED, RESOLVED)  # not while its canaries fail
    CHANGED[(_state, G.CANARY_PASSED, "no room waits")] = (S.RESOLVED, RESOLVED)
    CHANGED[(_state, G.CANARY_PASSED, "rooms wait")] = (_state, ("Note canary",))  # unmarked
CHANGED |= {  # after the restart, failing canaries are a failed room's follow-up
    (S.RESTARTED, G.CANARY_FAILED, "after the restart"): (S.ROLLING_BACK, (*FOLLOWED, "Rollback")),
    (S.RESTARTED, G.CANARY_FAILED, "no rollback"): (S.FOLLOWED_UP, FOLLOWED),
    (S.RESTARTED, G.CANARY_FAILED, "in the same breath"): (S.RESTARTED, ()),  # marked, no more
}
for _state in (S.RESTARTING, S.NOT_RESTARTED, S.ROLLING_BACK, S.FOLLOWED_UP):  # marked: stays open for them
    CHANGED[(_state, G.CANARY_FAILED, "")] = (_state, ("Note canary",))
# Workers that are full: a capacity incident of its own, or the outage incident becomes one (followed
# up once, unless it was already); a capacity incident never restarts nor follows up ("workers full").
FULL = ("Note capacity", "Notify slack followup", "Notify webhook followup")
CHANGED[(S.NEW, G.CAPACITY, "")] = (S.OPEN, ("Note opened", "Note restart", *OPENED[1:]))
for _state in (S.OPEN, S.RESTARTING, S.RESTARTED, S.NOT_RESTARTED):
    CHANGED[(_state, G.CAPACITY, "outage incident")] = (_state, FULL)
for _state in (S.ROLLING_BACK, S.FOLLOWED_UP):
    CHANGED[(_state, G.CAPACITY, "outage incident")] = (_state, FULL[:1])
# Operators (`workers.core.incident_operator`): acknowledged once, said on the routes that take it; no
# follow-up alert after it (the rollback goes on); a restart asked for claimed, or refused with a line.
for _state in set(IncidentState) - {S.NEW, S.RESOLVED}:
    CHANGED[(_state, G.ACKNOWLEDGED, "")] = (_state, ("Note acknowledged", "Notify webhook acknowledged"))
CHANGED[(S.RESTARTED, G.ROOM_FAILED, "acknowledged")] = (
    S.ROLLING_BACK,
    ("Note follow-up", "Note follow-up", "Rollback"),
)
CHANGED[(S.RESTARTED, G.CANARY_FAILED, "acknowledged")] = CHANGED[
    (S.RESTARTED, G.ROOM_FAILED, "acknowledged")
]
for _state in (S.OPEN, S.RESTARTED, S.NOT_RESTARTED, S.FOLLOWED_UP):
    for _what in ("deployment free", "cooldown over"):
        CHANGED[(_state, G.RESTART_ASKED, _what)] = (S.RESTARTING, ("Note restart", "Restart cloud"))
    for _what in ("restart under way", "in the cooldown", "nothing to restart"):
        CHANGED[(_state, G.RESTART_ASKED, _what)] = (_state, ("Note restart",))
for _state in (S.RESTARTING, S.ROLLING_BACK):
    CHANGED[(_state, G.RESTART_ASKED, "")] = (_state, ("Note restart",))
for _state in set(IncidentState) - {S.NEW, S.RESOLVED}:  # in maintenance: acknowledged, no restart
    CHANGED[(_state, G.ACKNOWLEDGED, "in maintenance")] = CHANGED[(_state, G.ACKNOWLEDGED, "")]
    CHANGED[(_state, G.RESTART_ASKED, "in maintenance")] = (_state, ("Note restart",))
CHANGED[(S.OPEN, G.CANARY_FAILED, "workers full")] = (S.OPEN, ("Note canary",))  # marked, not restarted
CHANGED[(S.RESTARTED, G.CANARY_FAILED, "workers full")] = (S.RESTARTED, ())
# Maintenance (rule 12): a window's start marks the incident, said once; its end with rooms still
# waiting escalates as an opening does (the restart claimed, or the cooldown waited out), quietly
# without. Marked, an incident claims no restart nor rollback, follows up on nothing and sends no alert;
# its fresh starts, its resolution and its log go on.
MAINTENANCE = ("Note maintenance",)
RESUMED = ("Note maintenance", "Notify slack opened", "Notify webhook opened")
OPEN_STATES = set(IncidentState) - {S.NEW, S.RESOLVED}
for _state in set(IncidentState) - {S.RESOLVED}:
    CHANGED[(_state, G.MAINTENANCE_STARTED, "")] = (_state, MAINTENANCE)
for _state in OPEN_STATES:
    CHANGED[(_state, G.MAINTENANCE_ENDED, "no room waits")] = (_state, MAINTENANCE)
    CHANGED[(_state, G.MAINTENANCE_ENDED, "rooms wait, cooldown")] = (S.OPEN, RESUMED)
    CHANGED[(_state, G.MAINTENANCE_ENDED, "rooms wait")] = (S.RESTARTING, RESUMED + RESTART)
    CHANGED[(_state, G.RECOVERED, "in maintenance")] = (S.RESOLVED, ("Note resolved", "Resolve"))
    CHANGED[(_state, G.CAPACITY, "in maintenance")] = (_state, ("Note capacity",))
CHANGED |= {
    (S.OPEN, G.CANARY_FAILED, "in maintenance"): (S.OPEN, ("Note canary",)),
    (S.RESTARTED, G.CANARY_FAILED, "in maintenance"): (S.RESTARTED, ()),  # marked, not followed up
    (S.RESTARTING, G.RESTART_FAILED, "in maintenance"): (S.NOT_RESTARTED, ()),
    (S.ROLLING_BACK, G.ROLLBACK_DONE, "in maintenance"): (S.FOLLOWED_UP, ("FreshStarts None",)),
}
# Act mode takes over an incident observe mode decided in: resolved, said on the routes an alert of it
# went out on and only there (in maintenance too: that alert went out before)
HANDED = ("Note resolved", "Notify webhook resolved", "Resolve")
for _state in OPEN_STATES:
    CHANGED[(_state, G.HANDED_OVER, "alerted")] = (S.RESOLVED, HANDED)
    CHANGED[(_state, G.HANDED_OVER, "in maintenance")] = (S.RESOLVED, HANDED)
    CHANGED[(_state, G.HANDED_OVER, "nothing sent")] = (S.RESOLVED, ("Note resolved", "Resolve"))
for _state in (S.RESTARTING, S.NOT_RESTARTED, S.ROLLING_BACK, S.FOLLOWED_UP):
    CHANGED[(_state, G.CANARY_FAILED, "in maintenance")] = (_state, ("Note canary",))
for _state in (S.OPEN, S.RESTARTING, S.NOT_RESTARTED):  # restarted before the window: rooms re-checked
    CHANGED[(_state, G.RESTART_LANDED, "in maintenance")] = (
        S.RESTARTED,
        ("FreshStarts None", "WatchComeback"),
    )
for _state in (S.RESTARTED, S.ROLLING_BACK, S.FOLLOWED_UP):
    CHANGED[(_state, G.RUNNING_AGAIN, "in maintenance")] = (_state, ("FreshStarts 0.0",))
for _state in OPEN_STATES:
    CHANGED[(_state, G.CANARY_PASSED, "in maintenance")] = (S.RESOLVED, ("Note resolved", "Resolve"))


def test_every_state_and_signal_pair_is_declared_and_sampled() -> None:
    assert set(INCIDENT) == set(product(IncidentState, Signal))
    assert {(s, g) for s, g, _ in CASES} == set(INCIDENT)
    assert set(CHANGED) <= set(CASES)


@pytest.mark.parametrize(
    ("state", "signal", "what"), CASES, ids=[f"{s}-{g}-{w or 'any'}" for s, g, w in CASES]
)
def test_incident_rule(state: IncidentState, signal: Signal, what: str) -> None:
    incident, report, policy = incident_samples(state, signal)[what]
    assert incident.state is state
    step = INCIDENT[(state, signal)](incident, report, policy)
    assert (step.incident.state, tuple(said(d) for d in step.decisions)) == CHANGED.get(
        (state, signal, what), (state, ())
    )
    if (state, signal, what) not in CHANGED:
        assert step == Step(incident)


def test_failed_canaries_mark_the_incident_and_only_a_pass_unmarks_it() -> None:
    """Opened or joined by failed canaries, the incident is marked; rooms recovering leave it open for
    them; a passing canary unmarks it, and resolves it when no room waits."""
    for state, what in ((S.NEW, "deployment free"), (S.OPEN, "deployment free"), (S.RESTARTING, "")):
        assert _step(state, G.CANARY_FAILED, what).incident.canary_failing, state
    assert _step(S.NEW, G.CANARY_FAILED, "deployment free").incident.reason.startswith("canary:")
    assert _step(S.RESTARTED, G.RECOVERED, "canary failing").incident.state is S.RESTARTED
    assert not _step(S.RESTARTED, G.CANARY_PASSED, "rooms wait").incident.canary_failing
    note = _step(S.RESTARTED, G.CANARY_FAILED, "no rollback").decisions[0]
    assert isinstance(note, Note) and note.outcome.startswith("canaries still fail after the restart")


def test_an_incident_a_canary_found_says_no_user_room_waits_and_ends_with_the_canary() -> None:
    incident, report, policy = incident_samples(S.NEW, G.CANARY_FAILED)["deployment free"]
    opened = INCIDENT[(S.NEW, G.CANARY_FAILED)](incident, replace(report, rooms=0), policy)
    slack = opened.decisions[1]
    assert isinstance(slack, Notify) and "No user room affected yet (found by a canary)." in slack.text
    marked, passed, policy = incident_samples(S.RESTARTED, G.CANARY_PASSED)["no room waits"]
    ended = INCIDENT[(S.RESTARTED, G.CANARY_PASSED)](marked, replace(passed, rooms=0), policy)
    assert ended.decisions[0] == Note("resolved", "canary passed, 100 s after it opened")
    assert (
        isinstance(ended.decisions[1], Notify)
        and "is back; its canary passed, 100 s" in ended.decisions[1].text
    )


def _step(state: IncidentState, signal: Signal, what: str) -> Step:
    incident, report, policy = incident_samples(state, signal)[what]
    return INCIDENT[(state, signal)](incident, report, policy)


def test_the_restart_is_claimed_for_the_deployment_only_where_it_is_called() -> None:
    """A claim is the deployment's restart written anew; a dead caller's is claimed again, its legs
    kept; a shared or waited-out restart writes nothing."""
    assert _step(S.NEW, G.OUTAGE, "deployment free").restart == DeploymentRestart(AT, (CLOUD,))
    assert _step(S.NEW, G.OUTAGE, "its caller died").restart == DeploymentRestart(AT, (CLOUD,))
    assert _step(S.RESTARTING, G.SWEPT, "its caller died").restart == DeploymentRestart(AT, (CLOUD,))
    for what in (
        "restart under way",
        "landed just now",
        "landed lately",
        "failed lately",
        "nothing to restart",
    ):
        assert _step(S.NEW, G.OUTAGE, what).restart is None, what


def test_opening_is_said_first_with_what_warden_tries_and_the_rooms_so_far() -> None:
    step = _step(S.NEW, G.OUTAGE, "deployment free")
    assert step.incident.opened_at == AT and step.incident.reason == "3 rooms missed their SLA within 60 s"
    note, slack = step.decisions[:2]
    assert note == Note("opened", "3 rooms missed their SLA within 60 s")
    assert isinstance(slack, Notify) and slack.text == (
        ":rotating_light: Warden incident IN_sample: agent 'notetaker' is not coming — 3 rooms missed "
        "their SLA within 60 s. 3 room(s) affected so far. Warden is trying: LiveKit Cloud agent restart."
    )
    nothing = _step(S.NEW, G.OUTAGE, "nothing to restart").decisions[1]
    assert isinstance(nothing, Notify) and nothing.text.endswith(
        "Warden is trying: nothing to restart (no Cloud agent or deploy hook set)."
    )


def test_a_failed_rooms_follow_up_names_it_masked_and_counts_the_rooms_waiting() -> None:
    incident, report, policy = incident_samples(S.RESTARTED, G.ROOM_FAILED)["after the restart"]
    step = INCIDENT[(S.RESTARTED, G.ROOM_FAILED)](incident, replace(report, room="call-+15550100123"), policy)
    assert step.decisions[0] == Note("follow-up", "room call-•••0123 still has no agent after the restart")
    assert isinstance(step.decisions[1], Notify) and step.decisions[1].text == (
        ":warning: Warden incident IN_sample: agent 'notetaker' still does not come after the restart; "
        "2 room(s) waiting. A person is needed."
    )
    assert step.incident.rollback_claimed_at == AT


def test_the_resolution_says_how_long_it_took() -> None:
    step = _step(S.RESTARTED, G.RECOVERED, "")
    assert step.decisions[0] == Note("resolved", "3 room(s) recovered in 100 s")
    assert isinstance(step.decisions[1], Notify) and step.decisions[1].text == (
        ":white_check_mark: Warden incident IN_sample resolved: agent 'notetaker' is back; 3 room(s) "
        "recovered, 100 s after the incident opened."
    )


def test_a_cloud_restart_landing_is_watched_and_its_text_says_so() -> None:
    cloud = _step(S.RESTARTING, G.RESTART_LANDED, "Cloud restart")
    hook = _step(S.RESTARTING, G.RESTART_LANDED, "deploy hook")
    assert cloud.incident.restarted_at == AT
    texts = [d.text for step in (cloud, hook) for d in step.decisions if isinstance(d, Notify)]
    assert texts == [
        ":arrows_counterclockwise: Warden incident IN_sample: agent 'notetaker' restarted; waiting rooms "
        "are re-checked as soon as its deployment runs, at most 20 s later.",
        ":arrows_counterclockwise: Warden incident IN_sample: agent 'notetaker' restarted; waiting rooms "
        "are re-checked 20 s later.",
    ]


def test_an_alert_shows_a_sent_value_inert_masked_and_bounded() -> None:
    """An agent's name is the app's to choose: in an alert it can start no new line, show no caller's
    number and run to no length."""
    from workers.core import alerts

    text = alerts.opened("inc-1", "notes\n:fake: line call-+15550100123" + "x" * 5000, "no worker", 3, "x")
    assert "\n" not in text and "\\n" in text
    assert "15550100123" not in text and "•••0123" in text
    assert len(text) < 1500 and "more chars" in text
