"""Which agents a room expects: learned from LiveKit's dispatches, job events and the room's rule. Pure,
like `workers.core.machine`, which gives each agent learned its part of the room (`AgentView`).

The rules, in plain words:

1. Expected agents are the union of the room's dispatches as `ListDispatch` reports them (a non-empty
   `agent_name`; the empty-name automatic dispatch only where the rule says `unnamed_agents`), the agents
   of `agent_job_started` and `agent_job_pending` events, and the agents of the room's rule (or
   `WARDEN_AGENT_NAME`). Each is learned once, with where it came from (`sources`), and recorded in the
   timeline (`Expect`).
2. Before any is known (no rule, no setting), the room's own watch (counting no agent as "ours") sets
   the join deadline when people arrive and asks LiveKit when it passes: the dispatches it lists are the
   agents the room expects. Its answer is, for the room, a reconciliation: who is there (sparing joins
   the listing may predate) and which agents it expects; the watch never acts on it, and is over. A
   room whose answer names no agent expects none and is left alone: Warden never creates a dispatch for
   it. A rule naming the agents ends the watch before it starts.
3. An agent learned while people wait is given its part as if it had watched from the first person's
   arrival, or from its dispatch when that came later (an app that adds a notetaker ten minutes into a
   meeting): an agent of its name there → watched; missing → its join deadline is then plus `join_sla`
   (already past when learned late: it fires at once, and it asks LiveKit itself before acting).
   Dispatches made later are learned whenever Warden lists the room's dispatches: a deadline's check,
   reconciliation (`RECONCILED` with dispatches), and the slow look at rooms with people that expect
   no agent yet.
4. Deadline attempts are numbered room-wide and only go up (also when an agent's part goes), so a
   timer or an answer (`Fact.attempt`) belongs to exactly one part; LiveKit's listing in an answer is
   news of who is there for the whole room. A restart (`AGENT_RESTARTED`) is for the part of the
   restarted agent (`Fact.agent`).
5. A phone caller (a participant of kind SIP) makes the room a SIP room for good (`Room.sip`), which may
   match a rule of its own (`sip = true`) with its own SLA, run from the caller's arrival. Agents only a
   rule that no longer applies named are not expected any more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from workers.core import job_signals
from workers.core.events import LISTINGS, Event, EventKind
from workers.core.room import AgentView, Room
from workers.core.rules import DISPATCH, JOB, RULE, SETTING, Rule

# Job webhooks that say the room expects their agent: a job started, or waiting for a worker.
_JOB_EXPECTATIONS = (EventKind.AGENT_JOB_STARTED, EventKind.AGENT_JOB_PENDING)


def expect(room: Room, rule: Rule) -> Room:
    """The room under `rule`: a rule naming the agents ends the room's own watch (nothing to discover);
    agents only a rule named that no longer applies (a caller's arrival changed the rule) are dropped."""
    if rule.agents is not None and room.watch is not None:
        room = replace(room, watch=None)
    named = set(rule.agents or ())
    kept = tuple(v for v in room.views if v.agent in named or not set(v.sources) <= {RULE, SETTING})
    return room if len(kept) == len(room.views) else replace(room, views=kept)


def declared(event: Event, rule: Rule, room: Room) -> Iterator[tuple[str, str, float | None]]:
    """(agent, source, dispatched at) triples the rule or the event says the room expects, in a stable
    order; the dispatches a listing names (an answer, or reconciliation's) count once the room's own
    watch is over, each agent's dispatched at its oldest listed dispatch's creation (None: not a
    dispatch)."""
    if rule.agents:
        yield from ((agent, rule.source, None) for agent in rule.agents)
    if event.kind in _JOB_EXPECTATIONS and event.job is not None and event.job.agent_name:
        yield event.job.agent_name, JOB, None
    if event.kind in LISTINGS and event.fact is not None and room.learned:
        since: dict[str, float] = {}
        for d in event.fact.dispatches:
            if d.agent_name or rule.unnamed_agents:
                since[d.agent_name] = min(since.get(d.agent_name, d.created_at), d.created_at)
        yield from ((name, DISPATCH, since[name]) for name in sorted(since))


def noted(room: Room, event: Event) -> Room:
    """What the event tells of each expected agent's dispatches, whatever its part was doing when it
    came (an agent that arrived meanwhile, or a re-fold that applies it after the agent's arrival, does
    not undo a dispatch): a dispatch Warden made (`agent_dispatched`) is counted (`redispatched`, by its
    attempt) and is the live one (`dispatch_id`); a listing names the newest of each agent's as the live
    one (a dispatch whose answer was lost, a dispatch Warden deleted replaced). A closed room is not
    changed again. A job that ended because someone meant it to (`job_signals.meant`: cancelled, its
    dispatch deleted, its room closed) is remembered as let go, by its dispatch."""
    fact = event.fact
    job = event.job
    if event.kind is EventKind.AGENT_JOB_ENDED and job is not None and room.finished_at is None:
        view = room.view(job.agent_name)
        if view is None or not job_signals.meant(job.status, job.reason):
            return room
        return room.put(replace(view, let_go=job.dispatch_id or job.id))
    if fact is None or room.finished_at is not None:
        return room
    if event.kind is EventKind.AGENT_DISPATCHED and fact.dispatch_id:
        made = room.view_for(fact.agent)
        if made not in room.views:
            return room  # no longer expected
        return room.put(replace(counted(made, fact.attempt), dispatch_id=fact.dispatch_id))
    if event.kind not in LISTINGS or not fact.dispatches:
        return room
    live = {d.agent_name: d.id for d in sorted(fact.dispatches, key=lambda d: d.created_at)}
    return replace(room, views=tuple(_live(view, live) for view in room.views))


def counted(view: AgentView, attempt: int) -> AgentView:
    """`view` with a re-dispatch at deadline `attempt` counted (once, however often it is told)."""
    if attempt in view.redispatched:
        return view
    return replace(view, redispatched=tuple(sorted((*view.redispatched, attempt))))


def _live(view: AgentView, live: dict[str, str]) -> AgentView:
    found = live.get(view.agent, view.dispatch_id)
    return view if found == view.dispatch_id else replace(view, dispatch_id=found)
