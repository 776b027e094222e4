"""Protecting the person while an expected agent cannot be brought back (issue 27; README: "Protecting
the person"). Pure: the machine passes every part through `protect` after its recovery rule (rule 12).

The rules, in plain words.
- An agent *cannot be brought back* when its part is FAILED (re-dispatches spent, or LiveKit refused),
  or when people have waited for it `fallback_after` seconds (default twice its join SLA) while its
  agent's incident is open. The machine learns the latter from the incident's own event to the room:
  `AGENT_RESTARTED`, which an open incident sends the rooms waiting for its agent once it restarted
  the deployment (kept as `outage_at` until the part stops waiting). It is judged at each step of the
  part, so at the first step after that time (the restart's CONFIRM deadline, `restart_grace` later,
  is one; so is every check of a re-dispatch).
- Then, once per outage (until the part stops waiting): a SIP room with `fallback_transfer_to` has its
  caller transferred (`TransferCaller`) — that takes precedence; else, with `fallback_agent`, that
  agent is dispatched (`DispatchFallback`). A part whose people all left gets nothing.
- When the expected agent comes after all, the fallback agent is removed (`RemoveFallback`) unless
  `fallback_stays`.
- With `notify_room`, each change of the part's recovery as the room's app sees it — `waiting` (its
  deadline passed and Warden is looking), `recovering` (re-dispatching or restarting), `fallback`,
  `restored` (the agent came after one of those) — is sent to the room (`SendStatus`). An agent that
  arrives in time, and a room the person left, get nothing.

`PROTECTION` holds the rules by (the part's protection, its need), a rule for every pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import StrEnum

from workers.core.actions import in_breach
from workers.core.events import Event, EventKind
from workers.core.protecting import Protection
from workers.core.room import WAITING_PHASES, AgentView, Phase, Policy, Reason, Recovery, Room
from workers.core.table import table

WAITING, RECOVERING, FALLBACK, RESTORED = "waiting", "recovering", "fallback", "restored"
FAILED_REASON, OUTAGE_REASON = "failed", "outage"
_AGENT_HERE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)


class Need(StrEnum):
    """Where the part stands, for protecting its people."""

    STILL_WAITING = "still_waiting"  # people wait, and its agent may yet be brought back
    CANNOT_COME_BACK = "cannot_come_back"  # people wait, and it cannot (failed, or its outage lasts)
    AGENT_CAME = "agent_came"
    PEOPLE_GONE = "people_gone"  # nobody waits any more (the room emptied or closed)


Rule = Callable[[AgentView, Room, Policy, str], AgentView]


def keep(view: AgentView, *_: object) -> AgentView:
    """Nothing changes."""
    return view


def take_fallback(view: AgentView, room: Room, policy: Policy, reason: str) -> AgentView:
    """The fallback, once: a SIP room's caller transferred (first), else the fallback agent sent."""
    if room.sip and policy.fallback_transfer_to:
        return replace(view, fallback=Protection.TRANSFERRED, fallback_reason=reason)
    if policy.fallback_agent:
        leaves = "" if policy.fallback_stays else policy.fallback_agent
        agent = Protection.FALLBACK_AGENT
        return replace(
            view,
            fallback=agent,
            fallback_reason=reason,
            fallback_to=policy.fallback_agent,
            fallback_agent=leaves,
        )
    return view


def forget(view: AgentView, *_: object) -> AgentView:
    """The outage is over for this part (its agent came, or nobody waits): nothing taken any more (the
    fallback agent removed, when the actions see `fallback_agent` go with its agent here)."""
    return replace(view, outage_at=None, fallback=Protection.NONE, fallback_reason="", fallback_agent="")


N = Need
PROTECTION: Mapping[tuple[Protection, Need], Rule] = table("PROTECTION", Protection, Need, {
    #                    none            fallback_agent   transferred
    N.STILL_WAITING:     (keep,           keep,            keep),
    N.CANNOT_COME_BACK:  (take_fallback,  keep,            keep),
    N.AGENT_CAME:        (forget,         forget,          forget),
    N.PEOPLE_GONE:       (forget,         forget,          forget),
})  # fmt: skip
del N


def fallback_line(view: AgentView) -> str:
    """The incident log's line of the fallback `view`'s part took because it failed ("" : none): the
    failure's report notes it, once it has opened (or joined) the incident."""
    if view.fallback_reason != FAILED_REASON:
        return ""
    if view.fallback is Protection.TRANSFERRED:
        return f"caller transferred ({FAILED_REASON})"
    if view.fallback is Protection.FALLBACK_AGENT:
        return f"fallback agent {view.fallback_to} dispatched ({FAILED_REASON})"
    return ""


def fallback_after(policy: Policy) -> float:
    return policy.fallback_after if policy.fallback_after is not None else 2 * policy.join_sla


def outage_known(room: Room, view: AgentView | None, event: Event) -> Room:
    """The room with `view`'s agent's incident known open, when `event` is that incident's restart
    (`AGENT_RESTARTED`) reaching a part whose people wait (the room's own watch has no agent)."""
    restart = event.kind is EventKind.AGENT_RESTARTED
    if view is None or not restart or view is room.watch or view.phase not in WAITING_PHASES:
        return room
    return room if view.outage_at is not None else room.put(replace(view, outage_at=event.at))


def need(room: Room, view: AgentView, policy: Policy, at: float) -> tuple[Need, str]:
    """The part's need, and why it cannot come back ("" when it can)."""
    if view.phase in _AGENT_HERE:
        return Need.AGENT_CAME, ""
    if view.phase not in WAITING_PHASES or not room.someone_here:
        return Need.PEOPLE_GONE, ""
    if view.recovery is Recovery.FAILED:
        return Need.CANNOT_COME_BACK, FAILED_REASON
    waited = at - view.waiting_since if view.waiting_since is not None else 0.0
    if view.outage_at is not None and waited >= fallback_after(policy):
        return Need.CANNOT_COME_BACK, OUTAGE_REASON
    return Need.STILL_WAITING, ""


def protect(room: Room, view: AgentView, policy: Policy, at: float) -> AgentView:
    """The part after rule 12: its fallback taken or given up, and what the room was last told. The
    fallback agent's own part (a room that expects it) is not protected by itself."""
    if not view.agent or view.agent == policy.fallback_agent:
        return view
    now, reason = need(room, view, policy, at)
    return _told(PROTECTION[(view.fallback, now)](view, room, policy, reason), policy, at)


def status(view: AgentView) -> str:
    """The part's recovery as the room's app is told it ("" : nothing to tell)."""
    if view.phase not in WAITING_PHASES:
        return ""
    if view.fallback is not Protection.NONE:
        return FALLBACK
    if in_breach(view):
        return RECOVERING
    reason = view.deadline.reason if view.deadline is not None else None
    looking = view.recovery is Recovery.CHECKING and reason in (Reason.JOIN, Reason.REJOIN)
    return WAITING if looking else ""


def _told(view: AgentView, policy: Policy, at: float) -> AgentView:
    """`told`: the status last sent to the room (`restored` once its agent came after one; "" when
    nobody is left to tell)."""
    if not policy.notify_room:
        return view
    if view.phase in _AGENT_HERE:
        return replace(view, told=RESTORED, told_at=at) if view.told not in ("", RESTORED) else view
    if view.phase not in WAITING_PHASES:
        return replace(view, told="", told_at=None) if view.told else view
    now = status(view)
    return replace(view, told=now, told_at=at) if now and now != view.told else view
