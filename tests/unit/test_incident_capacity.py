"""Issue 26 in the incident machine: workers that are full make a capacity incident that restarts
nothing and says so on every route, and a worker that took jobs and served none is named in the
incident's log and alerts (`workers.core.incident_capacity`)."""

from __future__ import annotations

from dataclasses import replace

from workers.core.alerts import Notify
from workers.core.incident import CAPACITY, IncidentState, Note, Restart, Rollback, Signal, transition
from workers.core.incident_samples import incident_samples

S, G = IncidentState, Signal


def texts(decisions: tuple[object, ...]) -> list[str]:
    return [d.text for d in decisions if isinstance(d, Notify)]


def test_a_capacity_incident_says_the_workers_are_full_on_every_route_and_restarts_nothing() -> None:
    incident, report, policy = incident_samples(S.NEW, G.CAPACITY)[""]
    step = transition(incident, report, policy)
    assert (step.incident.state, step.incident.kind) == (S.OPEN, CAPACITY)
    assert not [d for d in step.decisions if isinstance(d, Restart | Rollback)]
    said = texts(step.decisions)
    assert len(said) == 2 and all("workers for notetaker are full" in text for text in said)
    assert Note("restart", "not attempted: a restart adds no capacity") in step.decisions
    # rooms missing their SLA, failing, or the sweep: still no restart
    for signal, what in ((G.OUTAGE, "deployment free"), (G.ROOM_FAILED, "deployment free")):
        _, later, _ = incident_samples(S.OPEN, signal)[what]
        after = transition(step.incident, later, policy)
        assert not [d for d in after.decisions if isinstance(d, Restart)], signal
    swept = transition(step.incident, replace(report, signal=G.SWEPT), policy)
    assert not swept.decisions


def test_a_capacity_incident_resolves_when_jobs_are_accepted_again() -> None:
    incident, report, policy = incident_samples(S.NEW, G.CAPACITY)[""]
    opened = transition(incident, report, policy).incident
    _, recovered, _ = incident_samples(S.OPEN, G.RECOVERED)[""]
    step = transition(opened, recovered, policy)
    assert step.incident.state is S.RESOLVED
    assert all("workers for notetaker accept jobs again" in text for text in texts(step.decisions))


def test_an_outage_incident_that_hears_the_workers_are_full_restarts_and_rolls_back_no_more() -> None:
    incident, report, policy = incident_samples(S.RESTARTED, G.CAPACITY)["outage incident"]
    step = transition(incident, report, policy)
    assert step.incident.kind == CAPACITY
    assert all("are full" in text for text in texts(step.decisions))
    _, failed, _ = incident_samples(S.RESTARTED, G.ROOM_FAILED)["after the restart"]
    assert transition(step.incident, failed, policy).decisions == ()  # no follow-up, no rollback


def test_a_worker_that_took_three_jobs_and_served_none_is_named_in_the_log_and_the_alerts() -> None:
    incident, report, policy = incident_samples(S.NEW, G.OUTAGE)["deployment free"]
    step = transition(incident, replace(report, workers=(("W_bad", 3),)), policy)
    assert step.incident.workers == (("W_bad", 3),)
    assert Note("worker", "worker W_bad took 3 jobs and none joined") in step.decisions
    assert all(
        text.endswith("Worker W_bad took 3 jobs and none joined: restart that worker.")
        for text in texts(step.decisions)
    )
    # named once: a later report naming it again adds no line; its later alerts still name it
    _, failed, _ = incident_samples(S.RESTARTED, G.ROOM_FAILED)["after the restart"]
    restarted = replace(step.incident, state=S.RESTARTED, restarted_at=50.0)
    later = transition(restarted, replace(failed, workers=(("W_bad", 4),)), policy)
    assert not [d for d in later.decisions if isinstance(d, Note) and d.action == "worker"]
    assert texts(later.decisions) and all("worker w_bad" in t.lower() for t in texts(later.decisions))


def test_a_worker_is_named_with_its_value_made_inert_and_only_by_an_open_incident() -> None:
    incident, report, policy = incident_samples(S.NEW, G.OUTAGE)["deployment free"]
    step = transition(incident, replace(report, workers=(("W_\x1b[31m", 3),)), policy)
    assert "\x1b" not in "".join(texts(step.decisions)) and "\\x1b" in texts(step.decisions)[0]
    resolved, recovered, policy = incident_samples(S.RESOLVED, G.OUTAGE)[""]
    assert transition(resolved, replace(recovered, workers=(("W_1", 3),)), policy).incident.workers == ()


def test_several_workers_named_are_told_to_restart_as_several() -> None:
    from workers.core.alerts import naming

    text = naming("Agent down.", (("W_a", 3), ("W_b", 4)))
    assert text == (
        "Agent down. Worker W_a took 3 jobs and none joined; worker W_b took 4 jobs and none joined: "
        "restart those workers."
    )


def test_a_canary_refused_for_capacity_opens_a_capacity_incident_that_waits_for_a_passing_canary() -> None:
    """No room is in it: the sweep (RECOVERED, no room waiting) leaves it open; a canary passing, its job
    accepted, resolves it with the capacity incident's words. Nothing is ever restarted."""
    incident, report, policy = incident_samples(S.NEW, G.CAPACITY)[""]
    refused = replace(report, reason="canary: LiveKit refused its job", rooms=0, canary=True)
    step = transition(incident, refused, policy)
    assert (step.incident.state, step.incident.kind, step.incident.canary_failing) == (S.OPEN, CAPACITY, True)
    assert not [d for d in step.decisions if isinstance(d, Restart | Rollback)]
    assert all("No user room affected yet (found by a canary)" in text for text in texts(step.decisions))
    _, recovered, _ = incident_samples(S.OPEN, G.RECOVERED)[""]
    assert transition(step.incident, replace(recovered, rooms=0), policy).incident.state is S.OPEN
    failed = replace(refused, signal=G.CANARY_FAILED, reason="canary: 2 canaries in a row failed")
    after = transition(step.incident, failed, policy)  # no-shows between refusals: still no restart
    assert not [d for d in after.decisions if isinstance(d, Restart | Rollback)]
    passed = transition(after.incident, replace(recovered, signal=G.CANARY_PASSED, rooms=0), policy)
    assert passed.incident.state is S.RESOLVED
    assert all("workers for notetaker accept jobs again" in text for text in texts(passed.decisions))


def test_an_outage_incident_told_by_a_canary_that_the_workers_are_full_waits_for_a_passing_canary() -> None:
    incident, report, policy = incident_samples(S.RESTARTED, G.CAPACITY)["outage incident"]
    step = transition(incident, replace(report, canary=True), policy)
    assert (step.incident.kind, step.incident.canary_failing) == (CAPACITY, True)
    again = transition(step.incident, replace(report, canary=True), policy)
    assert again.decisions == () and again.incident == step.incident  # said once
