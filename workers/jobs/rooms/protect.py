"""Carrying out what protects the person (`workers.core.protecting`; the rules in `workers.core.fallback`):
a fallback agent dispatched or removed, a SIP caller transferred, a word to the room. Each is a notice of
the outbox, so a worker that dies between the decision and the call still makes it (the sweep), and each
is safe to make twice: the dispatch is ListDispatch before CreateDispatch (a live dispatch of the
fallback agent is kept; one whose agent came and went, in an earlier outage, is withdrawn), a transfer
looks up the room's callers first (one transferred has left), a removal of someone gone is no error; a
status sent twice says the same thing again.

A retryable failure (5xx, timeout) raises `UpstreamError`: the notice stays in the outbox and is tried
again with a backoff. A refusal (4xx) is final: logged (the transfer target masked) and counted as
failed; the room's timeline already holds the decision.
"""

from __future__ import annotations

import json
import logging

from prometheus_client import Counter

from workers.adapters.livekit import NOT_FOUND, Dispatcher, Presence, Protector
from workers.core.errors import UpstreamError
from workers.core.personal import mask_phone, mask_text
from workers.core.protecting import (
    STATUS_TOPIC,
    DispatchFallback,
    Protecting,
    RemoveFallback,
    SendStatus,
    TransferCaller,
)
from workers.core.room import Room
from workers.core.rules import Rules

log = logging.getLogger("warden.protect")

FALLBACKS = Counter(
    "warden_fallbacks_total",
    "What Warden did for the person while an agent could not be brought back, by agent and kind "
    "(agent, transfer, notice) and outcome (done, refused)",
    ["agent", "kind", "outcome"],
)


def fallback_metadata(agent: str, reason: str) -> str:
    """The fallback agent's dispatch metadata: whom it stands in for, and why."""
    return json.dumps({"warden_fallback_for": agent, "reason": reason})


def status_payload(action: SendStatus) -> bytes:
    return json.dumps({"agent": action.agent, "state": action.state, "since": action.since}).encode()


async def carry_out(
    action: Protecting,
    room: Room,
    *,
    presence: Presence,
    dispatcher: Dispatcher,
    protector: Protector | None,
    rules: Rules,
) -> str:
    """Make the call `action` asks for, for `room`; what was done, for the incident's log ("" : nothing
    worth a line). Raises `UpstreamError` when it is to be tried again."""
    where = mask_phone(room.name)
    try:
        match action:
            case DispatchFallback(agent=agent, fallback_agent=fallback, reason=reason):
                stale = await _served_and_gone(room, fallback, presence)
                await dispatcher.redispatch(room.name, fallback, fallback_metadata(agent, reason), stale)
                return _done(agent, "agent", f"fallback agent {fallback} dispatched ({reason})", where)
            case TransferCaller(agent=agent):
                return await _transfer(action, room, protector, rules)
            case RemoveFallback(fallback_agent=fallback):
                listed = await presence.participants(room.name) or ()
                there = [p.identity for p in listed if p.is_agent and p.agent_name == fallback]
                for identity in there:
                    await dispatcher.evict(room.name, identity)
                if not there:  # it never came, or left on its own: nothing removed, nothing to say
                    log.info("room %s: fallback agent %s not there to remove", where, fallback)
                    return ""
                log.info("fallback agent %s removed from room %s: %s came", fallback, where, action.agent)
                return f"fallback agent {fallback} removed: {action.agent} came"
            case SendStatus():
                if protector is not None:
                    await _tell(action, room, presence, protector, where)
    except UpstreamError as exc:
        if exc.retryable:
            raise
        kind = _KINDS[type(action)]
        if kind:
            FALLBACKS.labels(action.agent, kind, "refused").inc()
        what = mask_text(str(exc), _target(rules, room))
        if exc.code == NOT_FOUND:
            log.info(
                "%s for room %s: the room or participant is gone (%s)", type(action).__name__, where, what
            )
        else:
            log.warning("%s for room %s refused: %s", type(action).__name__, where, what)
            return f"{type(action).__name__} refused: {what}"
    return ""


_KINDS = {DispatchFallback: "agent", TransferCaller: "transfer", SendStatus: "notice", RemoveFallback: ""}


async def _served_and_gone(room: Room, fallback: str, presence: Presence) -> tuple[str, ...]:
    """The fallback agent's dispatches whose agent came and is gone (removed when the room's agent came,
    in an earlier outage): LiveKit still lists them, and a dispatch listed is taken for the live one, so
    they are withdrawn and a new one made. A dispatch whose agent has not come yet is kept (a retry of
    this notice after a worker died)."""
    here = {p.identity for p in await presence.participants(room.name) or ()}
    if not here:
        return ()  # ended, or nobody to serve: the dispatch answers for itself
    listed = await presence.listed_dispatches(room.name)
    return tuple(d.id for d in listed if d.agent_name == fallback and d.agents and not here & set(d.agents))


def _target(rules: Rules, room: Room) -> str:
    policy, _ = rules.policy_for(room.name, room.sip)
    return policy.fallback_transfer_to


async def _transfer(action: TransferCaller, room: Room, protector: Protector | None, rules: Rules) -> str:
    where = mask_phone(room.name)
    to = _target(rules, room)
    if protector is None or not to:
        log.warning("room %s: no transfer target any more; its caller is not transferred", where)
        return ""
    callers = await protector.callers(room.name)
    if not callers:
        log.info("room %s: no caller left to transfer (transferred already, or gone)", where)
        return ""
    await protector.transfer(room.name, callers[0], to, play_dialtone=True)
    return _done(action.agent, "transfer", f"caller transferred ({action.reason})", where)


async def _tell(action: SendStatus, room: Room, presence: Presence, protector: Protector, where: str) -> None:
    """Send the status; a room that ended meanwhile is not told (livekit-server answers `SendData` to
    an unknown room 503 after a wait, which would otherwise be tried again for as long as the outbox
    keeps it: it lists such a room as empty)."""
    try:
        await protector.send_data(room.name, STATUS_TOPIC, status_payload(action))
    except UpstreamError as exc:
        if exc.retryable and not await presence.participants(room.name):
            log.info("room %s: nobody left to tell %s is %s", where, action.agent, action.state)
            return
        raise
    _done(action.agent, "notice", f"told {action.agent} is {action.state}", where)


def _done(agent: str, kind: str, what: str, where: str) -> str:
    FALLBACKS.labels(agent, kind, "done").inc()
    log.info("room %s: %s, for %s", where, what, agent)
    return what
