"""Draw the room state machine as a Mermaid diagram by running `rooms.TABLE` on sample rooms.

`python -m workers.core.diagram` prints it; `make diagram` updates the README's copy between its
markers, and a test fails when the two differ, so the picture cannot drift from the rules.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from workers.core.events import INTERNAL_KINDS, Event, EventKind, Fact, Job, Participant, ParticipantKind
from workers.core.machine import transition
from workers.core.room import Agent, Person, Phase, Policy, Room

SID, NAME = "RM_sample", "sample"
PERSON = Person("alice", "PA_alice", 1)
AGENT = Agent("agent-1", "PA_agent", "notetaker", 2)

SAMPLE_ROOMS: dict[Phase, Room] = {
    Phase.IDLE: Room(SID, NAME),
    Phase.WAITING: Room(SID, NAME, Phase.WAITING, people=(PERSON,), waiting_since=1),
    Phase.AGENT_PRESENT: Room(SID, NAME, Phase.AGENT_PRESENT, people=(PERSON,), agents=(AGENT,)),
    Phase.AGENT_ACTIVE: Room(
        SID, NAME, Phase.AGENT_ACTIVE, people=(PERSON,), agents=(Agent(**{**AGENT.__dict__, "active_at": 3}),)
    ),
    Phase.AGENT_LOST: Room(SID, NAME, Phase.AGENT_LOST, people=(PERSON,), waiting_since=4),
    Phase.CLOSED: Room(SID, NAME, Phase.CLOSED, finished_at=5),
}


def _participant(identity: str, sid: str, kind: ParticipantKind | None) -> Participant:
    return Participant(
        identity, sid, None if kind is None else int(kind), "notetaker" if identity == "agent-1" else ""
    )


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
            "person": make(_participant(who, sid, ParticipantKind.STANDARD)),
            "agent": make(_participant(agent, AGENT.sid, ParticipantKind.AGENT)),
        }
    if kind in (EventKind.TRACK_PUBLISHED, EventKind.TRACK_UNPUBLISHED, EventKind.HEARTBEAT):
        return {"agent": make(_participant(agent, AGENT.sid, None), track="TR_1")}
    if kind in (EventKind.AGENT_JOB_STARTED, EventKind.AGENT_JOB_ENDED):
        return {"": make(job=Job("AJ_1", "notetaker", "AD_1", 1, agent))}
    return {"": make()}


def edges(policy: Policy = Policy("notetaker")) -> list[tuple[Phase, Phase, str]]:  # noqa: B008 - frozen
    """(from, to, label) for every sample transition that changes the phase, in table order."""
    found: list[tuple[Phase, Phase, str]] = []
    for phase, room in SAMPLE_ROOMS.items():
        for kind in EventKind:
            for who, event in sample_events(kind).items():
                after = transition(room, event, now=0.0, policy=policy).room.phase
                label = f"{kind} ({who})" if who else str(kind)
                if after != phase and (phase, after, label) not in found:
                    found.append((phase, after, label))
    return found


def mermaid() -> str:
    """The diagram as Mermaid source."""
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.IDLE}"]
    lines += [f"    {a} --> {b}: {label}" for a, b, label in edges()]
    lines.append(f"    {Phase.CLOSED} --> [*]")
    return "\n".join(lines)


def update_readme(path: Path) -> None:
    """Replace the diagram between the README's `diagram:start` / `diagram:end` markers."""
    text = path.read_text()
    block = f"<!-- diagram:start -->\n```mermaid\n{mermaid()}\n```\n<!-- diagram:end -->"
    pattern = r"<!-- diagram:start -->.*?<!-- diagram:end -->"
    path.write_text(re.sub(pattern, lambda _: block, text, flags=re.S))


if __name__ == "__main__":
    if sys.argv[1:]:
        update_readme(Path(sys.argv[1]))
    else:
        print(mermaid())
