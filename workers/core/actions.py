"""The actions a room's state asks for, derived from what changed: what each expected agent's part
still awaits (`pending_actions`: a job that died half-way does these again, safely), and what a step or a
re-fold newly asks for (`new_actions`). Pure; the action types are values, in `workers.core.room`.
"""

from __future__ import annotations

from workers.core.protecting import DispatchFallback, Protection, RemoveFallback, SendStatus, TransferCaller
from workers.core.room import (
    Action,
    AgentView,
    CheckPresence,
    Dispatch,
    Evict,
    Expect,
    Phase,
    Reason,
    Recovery,
    Redispatch,
    ReportBreach,
    ReportFailed,
    ReportRecovered,
    Room,
    ScheduleDeadline,
)
from workers.core.rules import SETTING


def pending_actions(view: AgentView) -> tuple[Action, ...]:
    """What an agent's part still waits for Warden to do (a re-run job does these again, safely)."""
    deadline, agent = view.deadline, view.agent
    if deadline is None:
        return ()
    if view.recovery is Recovery.NONE:
        return (ScheduleDeadline(deadline.attempt, deadline.at, deadline.reason, agent),)
    if view.recovery is Recovery.CHECKING:
        return (CheckPresence(deadline.attempt, agent),)
    if view.recovery is Recovery.EVICTING:
        return (Evict(deadline.attempt, view.evict, agent),)
    if view.recovery is Recovery.REDISPATCHING:
        stale, attributes = view.stale_dispatches, view.dispatch_attributes
        return (Redispatch(deadline.attempt, agent, view.dispatch_metadata, stale, attributes),)
    return ()


def in_breach(view: AgentView) -> bool:
    """Has the agent missed its SLA, with Warden still working on it (or given up)? Removing a second
    copy of an agent that is there is no breach."""
    if view.deadline is not None and view.deadline.reason is Reason.DUPLICATE:
        return False
    return (
        view.recovery in (Recovery.REDISPATCHING, Recovery.EVICTING, Recovery.FAILED)
        or view.redispatches > 0
        or (view.deadline is not None and view.deadline.reason is Reason.CONFIRM)
    )


def new_actions(before: Room, after: Room) -> tuple[Action, ...]:
    """What `after` asks for that `before` did not, part by part (a step's, or a re-fold's): the room's
    own watch while it lasts, then each expected agent's, an agent new to the room recorded as
    expected first."""
    actions: list[Action] = []
    if after.watch is not None:
        actions += _asked(before.watch or AgentView(), after.watch)
    for view in after.views:
        was = before.view(view.agent)
        if was is None:
            actions += [Expect(view.agent, s) for s in view.sources[:1] if s != SETTING]  # not the setting's
            was = AgentView(view.agent)
        actions += _asked(was, view)
    return tuple(actions)


def _asked(before: AgentView, after: AgentView) -> list[Action]:
    """The actions one part asks for that it did not before."""
    already = set(pending_actions(before))
    actions: list[Action] = [a for a in pending_actions(after) if a not in already]
    if in_breach(after) and not in_breach(before):
        reason = str(after.deadline.reason) if after.deadline else "failed"
        actions.append(ReportBreach(reason, after.agent, after.full, after.unjoined))
    if after.recovery is Recovery.FAILED and before.recovery is not Recovery.FAILED:
        actions.append(ReportFailed(after.error, after.redispatches, after.agent))
    if in_breach(before) and not in_breach(after):
        actions.append(ReportRecovered(str(after.phase), after.agent))
    if after.dispatched_on_start and not before.dispatched_on_start:
        actions.append(Dispatch(after.agent))
    return actions + _protecting(before, after)


def _protecting(before: AgentView, after: AgentView) -> list[Action]:
    """What protecting the person newly asks for (`workers.core.fallback`): the fallback taken, the
    fallback agent removed when ours came, what the room is told."""
    actions: list[Action] = []
    if after.fallback is not before.fallback and after.fallback is Protection.TRANSFERRED:
        actions.append(TransferCaller(after.agent, after.fallback_reason))
    if after.fallback is not before.fallback and after.fallback is Protection.FALLBACK_AGENT:
        actions.append(DispatchFallback(after.agent, after.fallback_to, after.fallback_reason))
    came = after.phase in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)
    if before.fallback_agent and after.fallback is Protection.NONE and came:
        actions.append(RemoveFallback(after.agent, before.fallback_agent))
    if after.told and after.told != before.told and after.told_at is not None:
        actions.append(SendStatus(after.agent, after.told, after.told_at))
    return actions
