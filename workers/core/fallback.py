"""Protecting the person while an expected agent cannot be brought back (issue 27; README: "Protecting
the person"). Pure: the machine applies `protect` to every part after its recovery rule (rule 12).

The rules, in plain words.
- An agent *cannot be brought back* when its part is FAILED (re-dispatches spent, or LiveKit refused),
  or when people have waited for it `fallback_after` seconds (default twice its join SLA) while its
  agent's incident is open. The machine learns the latter from the incident's own event to the room:
  `AGENT_RESTARTED`, which an open incident sends the rooms waiting for its agent once it restarted
  the deployment (`outage_at`, kept until the part stops waiting). It is judged at each step of the
  part, so at the first step after that time (the restart's CONFIRM deadline, `restart_grace` later,
  is one).
- Then, once per outage (until the part stops waiting): a SIP room with `fallback_transfer_to` has its
  caller transferred (`TransferCaller`) — that takes precedence; else, with `fallback_agent`, that
  agent is dispatched (`DispatchFallback`). A part whose people all left gets nothing.
- When the expected agent comes after all, the fallback agent is removed (`RemoveFallback`) unless
  `fallback_stays`.
- With `notify_room`, each change of the part's recovery as the room's app sees it — `waiting` (its
  deadline passed and Warden is looking), `recovering` (re-dispatching or restarting), `fallback`,
  `restored` (the agent came after one of those) — is sent to the room (`SendStatus`). An agent that
  arrives in time, and a room the person left, get nothing.
"""

from __future__ import annotations

from dataclasses import replace

from workers.core.actions import in_breach
from workers.core.room import WAITING_PHASES, AgentView, Phase, Policy, Reason, Recovery, Room

AGENT = "agent"
TRANSFER = "transfer"
NOTICE = "notice"
WAITING, RECOVERING, FALLBACK, RESTORED = "waiting", "recovering", "fallback", "restored"
FAILED_REASON = "failed"
OUTAGE_REASON = "outage"


def fallback_after(policy: Policy) -> float:
    return policy.fallback_after if policy.fallback_after is not None else 2 * policy.join_sla


def outage_known(view: AgentView, at: float) -> AgentView:
    """Its agent's incident is open (the incident's restart reached the room at `at`)."""
    if view.phase not in WAITING_PHASES or view.outage_at is not None:
        return view
    return replace(view, outage_at=at)


def protect(room: Room, view: AgentView, policy: Policy, at: float) -> AgentView:
    """The part after rule 12: its fallback taken or given up, and what the room was last told."""
    waiting = view.phase in WAITING_PHASES and room.someone_here
    if not waiting:
        view = replace(view, outage_at=None, fallback="", fallback_agent="", fallback_reason="")
    elif not view.fallback and view.agent and view.agent != policy.fallback_agent:
        reason = _cannot_come_back(view, policy, at)
        if reason:
            view = _fallback(room, view, policy, reason)
    return _told(view, policy, at, waiting)


def _cannot_come_back(view: AgentView, policy: Policy, at: float) -> str:
    if view.recovery is Recovery.FAILED:
        return FAILED_REASON
    waited = at - view.waiting_since if view.waiting_since is not None else 0.0
    if view.outage_at is not None and waited >= fallback_after(policy):
        return OUTAGE_REASON
    return ""


def _fallback(room: Room, view: AgentView, policy: Policy, reason: str) -> AgentView:
    if room.sip and policy.fallback_transfer_to:
        return replace(view, fallback=TRANSFER, fallback_reason=reason)
    if policy.fallback_agent:
        stays = "" if policy.fallback_stays else policy.fallback_agent
        return replace(
            view,
            fallback=AGENT,
            fallback_reason=reason,
            fallback_agent=stays,
            fallback_to=policy.fallback_agent,
        )
    return view


def status(view: AgentView) -> str:
    """The part's recovery as the room's app is told it ("" : nothing to tell)."""
    if view.phase not in WAITING_PHASES:
        return ""
    if view.fallback:
        return FALLBACK
    if in_breach(view):
        return RECOVERING
    deadline = view.deadline
    if (
        view.recovery is Recovery.CHECKING
        and deadline is not None
        and deadline.reason in (Reason.JOIN, Reason.REJOIN)
    ):
        return WAITING
    return ""


def _told(view: AgentView, policy: Policy, at: float, waiting: bool) -> AgentView:
    if not policy.notify_room:
        return view
    if not waiting:
        here = view.phase in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)
        if here and view.told and view.told != RESTORED:
            return replace(view, told=RESTORED, told_at=at)
        if not here and view.told:
            return replace(view, told="", told_at=None)  # the person left: nobody to tell
        return view
    now = status(view)
    if now and now != view.told:
        return replace(view, told=now, told_at=at)
    return view
