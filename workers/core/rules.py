"""Which agents a room expects and on what terms: the rules (`WARDEN_RULES`, read and checked by
`workers.rules_file`) as plain data, and the matching of a room to its rule. Pure.

A room matches the first rule whose every condition holds: `room`, a glob on the room's name; `sip`,
whether a phone caller is (or was) in it. `WARDEN_AGENT_NAME`, when set, is a last rule that expects
that agent in every room. A rule's settings replace the environment's for the rooms it matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from workers.core.room import Policy

RULE = "rule"
SETTING = "setting"
DISPATCH = "dispatch"
JOB = "job"


@dataclass(frozen=True)
class Rule:
    number: int  # 1-based, as in the file; 0 for the rule `WARDEN_AGENT_NAME` makes
    room: str = ""  # a glob on the room's name ("" : any)
    sip: bool | None = None  # a phone caller in the room (None : either)
    agents: tuple[str, ...] | None = None  # expected even when no dispatch says so; None: learn them
    unnamed_agents: bool = False  # the server's empty-name (automatic) dispatch counts as an agent
    join_sla: float | None = None
    rejoin_sla: float | None = None
    active_sla: float | None = None
    stuck_initializing: float | None = None  # `lk.agent.state` limits (`workers.core.liveness`); 0: off
    stuck_thinking: float | None = None
    max_redispatches: int | None = None
    cloud_agent_id: str = ""  # what escalation restarts for these agents
    deploy_hook_url: str = ""
    canary: bool = False  # Warden places canaries for these agents (`workers.core.canary`)
    fallback_agent: str | None = None  # protecting the person (`workers.core.fallback`)
    fallback_after: float | None = None
    fallback_stays: bool | None = None
    fallback_transfer_to: str | None = field(default=None, repr=False)  # personal data: never shown
    notify_room: bool | None = None
    slo: float | None = None  # the objective for its agents' `served` (`WARDEN_SLO` otherwise)
    source: str = RULE

    def matches(self, room_name: str, sip: bool) -> bool:
        if self.room and not fnmatchcase(room_name, self.room):
            return False
        return self.sip is None or self.sip == sip

    def applied_to(self, policy: Policy) -> Policy:
        """The environment's policy with this rule's settings in place of its own."""
        changes: dict[str, Any] = {}
        for key in ("join_sla", "rejoin_sla", "max_redispatches", *FALLBACK_KEYS):
            if getattr(self, key) is not None:
                changes[key] = getattr(self, key)
        if self.active_sla is not None:
            changes["active_sla"] = self.active_sla or None  # 0 turns the stall check off
        for key in ("stuck_initializing", "stuck_thinking"):
            if getattr(self, key) is not None:
                changes[key] = getattr(self, key) or None  # 0 turns that state's rule off
        if self.sip:
            changes["sla_from_room_start"] = False  # a caller's SLA runs from the caller's arrival
        return replace(policy, **changes) if changes else policy


NO_RULE = Rule(0)
FALLBACK_KEYS = ("fallback_agent", "fallback_after", "fallback_stays", "fallback_transfer_to", "notify_room")


@dataclass(frozen=True)
class Rules:
    """The rules in order, and the environment's policy under them."""

    rules: tuple[Rule, ...] = ()
    policy: Policy = field(default_factory=Policy)
    observe: bool = False  # observe mode (`WARDEN_MODE`): decisions are recorded, not carried out

    @classmethod
    def of(cls, rules: tuple[Rule, ...], policy: Policy) -> Rules:
        """`rules`, then `WARDEN_AGENT_NAME` (the policy's agent name) as the last rule, if set."""
        if policy.agent_name:
            rules = (*rules, Rule(0, agents=(policy.agent_name,), source=SETTING))
        return cls(rules, replace(policy, agent_name=""))

    @property
    def legacy_agent(self) -> str:
        """`WARDEN_AGENT_NAME`: whom rooms recorded before views existed were watched for."""
        return next((r.agents[0] for r in self.rules if r.source == SETTING and r.agents), "")

    def match(self, room_name: str, sip: bool) -> Rule:
        return next((r for r in self.rules if r.matches(room_name, sip)), NO_RULE)

    def policy_for(self, room_name: str, sip: bool) -> tuple[Policy, Rule]:
        rule = self.match(room_name, sip)
        return rule.applied_to(self.policy), rule

    def rule_for_agent(self, agent: str, room_name: str, sip: bool) -> Rule:
        """The rule that says how to restart `agent` for this room: its room's rule when that one names
        a target, else the first rule expecting `agent` that does (with no room, as after a restart of
        Warden, only the latter: a catch-all rule with another agent's target is not this agent's)."""
        rule = self.match(room_name, sip) if room_name else NO_RULE  # no room: only rules naming it
        if rule.cloud_agent_id or rule.deploy_hook_url:
            return rule
        named = (r for r in self.rules if r.agents and agent in r.agents)
        return next((r for r in named if r.cloud_agent_id or r.deploy_hook_url), rule)
