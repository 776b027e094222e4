"""Draw the state machines as Mermaid diagrams by running their tables on samples.

Presence: `machine.transition` on a room whose one expected agent sees it in each phase, for sample
events of every kind. Recovery: the `machine.RECOVERY` rule of every (recovery state, trigger) pair on
a room whose agent's part is in that state, for sample inputs of the trigger. Incident: the
`incident.INCIDENT` rule of every (state, signal) pair on an incident in that state, for the sample
reports of `workers.core.incident_samples`. An edge is drawn wherever the state changed.
The samples live beside it: the rooms in `diagram_samples`, the recovery's inputs in `diagram_recovery`,
the protection's in `diagram_protection`, the incidents' in `incident_samples`.
`python -m workers.core.diagram` prints them; `make diagram` updates the README's copies between their
markers, and a test fails when they differ, so the pictures cannot drift from the rules.
"""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path

from workers.core.diagram_protection import protection_edges, protection_start
from workers.core.diagram_recovery import recovery_edges
from workers.core.diagram_samples import (
    AGENT,
    NAME,
    PERSON,
    RULES,
    SAMPLE_ROOMS,
    SID,
    ZERO_CONFIG,
    Edge,
    part,
    participant,
)
from workers.core.events import (
    INTERNAL_KINDS,
    DispatchInfo,
    Event,
    EventKind,
    Fact,
    Job,
    Participant,
    ParticipantKind,
)
from workers.core.incident import INCIDENT, IncidentState, Signal
from workers.core.incident_samples import incident_samples
from workers.core.machine import transition
from workers.core.room import AgentView, Deadline, Phase, Reason, Recovery, Room

__all__ = ["DIAGRAMS", "RULES", "SAMPLE_ROOMS", "block", "part", "phase_after", "sample_events"]


def phase_after(phase: Phase, event: Event) -> Phase:
    """The sample room of `phase` after `event`: as its one expected agent sees it (the notetaker, by
    `RULES`); the room that expects no agent (by `ZERO_CONFIG`) as its row shows it."""
    room = SAMPLE_ROOMS[phase]
    if phase is Phase.NO_AGENT_EXPECTED:
        return transition(room, event, now=0.0, rules=ZERO_CONFIG).room.summary().phase
    return part(transition(room, event, now=0.0, rules=RULES).room).phase


def sample_events(kind: EventKind) -> dict[str, Event]:
    """Representative events of one kind, labelled by whom they concern."""
    # A reconciliation listing taken well after the sample joins (within its grace it undoes nothing).
    at = 100 if kind is EventKind.RECONCILED else 10

    def make(participant: Participant | None = None, job: Job | None = None, track: str = "") -> Event:
        fact = Fact(attempt=1, at=float(at)) if kind in INTERNAL_KINDS else None
        return Event(f"EV_{kind}", kind, str(kind), at, SID, NAME, participant, track, job, fact)

    person, agent = PERSON.identity, AGENT.identity
    if kind in (
        EventKind.PARTICIPANT_JOINED,
        EventKind.PARTICIPANT_LEFT,
        EventKind.PARTICIPANT_CONNECTION_ABORTED,
    ):
        sid = "PA_bob" if kind is EventKind.PARTICIPANT_JOINED else PERSON.sid
        who = "bob" if kind is EventKind.PARTICIPANT_JOINED else person
        return {
            "person": make(participant(who, sid, ParticipantKind.STANDARD)),
            "agent": make(participant(agent, AGENT.sid, ParticipantKind.AGENT)),
        }
    if kind in (EventKind.TRACK_PUBLISHED, EventKind.TRACK_UNPUBLISHED, EventKind.HEARTBEAT):
        return {"agent": make(participant(agent, AGENT.sid, None), track="TR_1")}
    if kind in (EventKind.AGENT_JOB_STARTED, EventKind.AGENT_JOB_PENDING, EventKind.AGENT_JOB_ENDED):
        return {"": make(job=Job("AJ_1", "notetaker", "AD_1", 1, agent))}
    return {"": make()}


# A room with no agent named anywhere, whose own watch asks LiveKit at its join deadline (alice waits).
_WATCHING = Room(
    SID,
    NAME,
    people=(PERSON,),
    attempt=1,
    watch=AgentView(
        phase=Phase.WAITING,
        waiting_since=1,
        deadline=Deadline(1, 16.0, Reason.JOIN),
        recovery=Recovery.CHECKING,
    ),
)
_ALICE = participant(PERSON.identity, PERSON.sid, ParticipantKind.STANDARD)


def _watch_answered() -> Event:
    """LiveKit's answer to the room's own watch: alice, and no dispatch."""
    fact = Fact(attempt=1, at=20.0, participants=(_ALICE,))
    return Event("EV_answer", EventKind.PRESENCE_OBSERVED, "presence_observed", 20, SID, NAME, fact=fact)


def _later_dispatch() -> Event:
    """Reconciliation's listing of the room that expects no agent: alice, and a dispatch made since."""
    dispatch = DispatchInfo("AD_1", "notetaker", created_at=50.0)
    fact = Fact(at=100.0, participants=(_ALICE,), dispatches=(dispatch,))
    return Event("EV_listed", EventKind.RECONCILED, "reconciled", 100, SID, NAME, fact=fact)


def _discovered() -> list[Edge]:
    """The room's own watch answered: the agents LiveKit names are expected, or none is; and a room that
    expects none learns a dispatch made later from a listing."""
    found: list[Edge] = []
    after = transition(_WATCHING, _watch_answered(), now=0.0, rules=ZERO_CONFIG).room.summary().phase
    found.append((Phase.WAITING, after, EventKind.PRESENCE_OBSERVED, "no agent named"))
    none = SAMPLE_ROOMS[Phase.NO_AGENT_EXPECTED]
    after = transition(none, _later_dispatch(), now=0.0, rules=ZERO_CONFIG).room.summary().phase
    found.append((Phase.NO_AGENT_EXPECTED, after, EventKind.RECONCILED, "dispatch listed"))
    return found


def edges() -> list[Edge]:
    """(from, to, event kind, whom) for every sample event that changes the phase."""
    found: list[Edge] = []
    for phase in SAMPLE_ROOMS:
        for kind in EventKind:
            for who, event in sample_events(kind).items():
                after = phase_after(phase, event)
                if after != phase:
                    found.append((phase, after, kind, who))
    return found + _discovered()


def incident_edges() -> list[Edge]:
    """(from, to, signal, what it said) for every sample report that changes the incident's state (the
    samples "in maintenance" only repeat others' edges: a marked incident changes state less)."""
    found: list[Edge] = []
    for state in IncidentState:
        for signal in Signal:
            for what, (incident, report, policy) in incident_samples(state, signal).items():
                if what == "in maintenance":
                    continue
                after = INCIDENT[(state, signal)](incident, report, policy).incident.state
                if after != state:
                    found.append((state, after, signal, what))
    return found


def _arrows(found: list[Edge]) -> list[str]:
    """One arrow per (from, to), labelled by its inputs in table order, variants in brackets."""
    labels: dict[tuple[StrEnum, StrEnum], dict[StrEnum, list[str]]] = {}
    for a, b, key, what in found:
        variants = labels.setdefault((a, b), {}).setdefault(key, [])
        if what and what not in variants:
            variants.append(what)
    return [
        f"    {a} --> {b}: " + ", ".join(f"{k} ({' / '.join(v)})" if v else str(k) for k, v in inputs.items())
        for (a, b), inputs in labels.items()
    ]


def mermaid() -> str:
    """The presence diagram as Mermaid source."""
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.IDLE}"]
    lines += _arrows(edges())
    lines.append(f"    {Phase.CLOSED} --> [*]")
    return "\n".join(lines)


def recovery_mermaid() -> str:
    """The recovery diagram as Mermaid source."""
    lines = ["stateDiagram-v2", f"    [*] --> {Recovery.NONE}"]
    lines += _arrows(recovery_edges())
    return "\n".join(lines)


def incident_mermaid() -> str:
    """The incident diagram as Mermaid source."""
    lines = ["stateDiagram-v2", f"    [*] --> {IncidentState.NEW}"]
    lines += _arrows(incident_edges())
    lines.append(f"    {IncidentState.RESOLVED} --> [*]")
    return "\n".join(lines)


def protection_mermaid() -> str:
    """The protection diagram (`workers.core.fallback`) as Mermaid source."""
    return "\n".join(["stateDiagram-v2", f"    [*] --> {protection_start()}", *_arrows(protection_edges())])


DIAGRAMS = {
    "presence": mermaid,
    "recovery": recovery_mermaid,
    "incident": incident_mermaid,
    "protection": protection_mermaid,
}


def block(name: str) -> str:
    """The README's copy of one diagram, with its markers."""
    return f"<!-- diagram:{name}:start -->\n```mermaid\n{DIAGRAMS[name]()}\n```\n<!-- diagram:{name}:end -->"


def update_readme(path: Path) -> None:
    """Replace each diagram between the README's `diagram:NAME:start` / `diagram:NAME:end` markers."""
    text = path.read_text()
    for name in DIAGRAMS:
        found = re.search(rf"<!-- diagram:{name}:start -->.*?<!-- diagram:{name}:end -->", text, re.S)
        if found is None:
            raise SystemExit(f"{path} has no markers for the {name} diagram")
        text = text[: found.start()] + block(name) + text[found.end() :]
    path.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:]:
        update_readme(Path(sys.argv[1]))
    else:
        print("\n\n".join(DIAGRAMS[name]() for name in DIAGRAMS))
