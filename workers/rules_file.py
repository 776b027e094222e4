"""`WARDEN_RULES`: the rules file (TOML), read and checked once at start-up.

    [[rule]]
    match = { room = "support-*" }      # a glob on the room's name; or { sip = true }: a caller is in it
    agents = ["assistant", "notetaker"] # expected even when no dispatch says so; omit: learn from LiveKit
    unnamed_agents = false              # the server's empty-name (automatic) dispatch is an agent too
    join_sla_seconds = 10               # also rejoin_sla_seconds, active_sla_seconds, max_redispatches
    stuck_thinking_seconds = 90         # also stuck_initializing_seconds (lk.agent.state; 0: off)
    cloud_agent_id = "CA_..."           # or deploy_hook_url: what escalation restarts for these agents
    canary = true                       # canaries for these agents (WARDEN_CANARY_EVERY)
    fallback_agent = "apology"          # protecting the person: also fallback_after_seconds,
    fallback_transfer_to = "tel:+1..."  # fallback_stays, notify_room (README: Protecting the person)
    slo = 0.995                         # the objective for these agents' `served` (WARDEN_SLO otherwise)

A mistake stops start-up with a message naming the file, the rule's number and the key (`RulesError`,
a `SettingsError`). Deploy-hook URLs are secrets: an error never repeats their value.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.core.errors import SettingsError
from workers.core.rules import Rule
from workers.setting_values import NOT_A_TRANSFER_TARGET, check_transfer_target

_MATCH_KEYS = {"room", "sip"}
_NUMBERS = {
    "join_sla_seconds": "join_sla",
    "rejoin_sla_seconds": "rejoin_sla",
    "active_sla_seconds": "active_sla",
    "stuck_initializing_seconds": "stuck_initializing",
    "stuck_thinking_seconds": "stuck_thinking",
}
_ZERO_IS_OFF = {"active_sla_seconds", "stuck_initializing_seconds", "stuck_thinking_seconds"}
_KEYS = {
    "match",
    "agents",
    "unnamed_agents",
    "max_redispatches",
    "cloud_agent_id",
    "deploy_hook_url",
    "canary",
    "fallback_agent",
    "fallback_after_seconds",
    "fallback_stays",
    "fallback_transfer_to",
    "notify_room",
    "slo",
    *_NUMBERS,
}


class RulesError(SettingsError):
    pass


def load_rules(path: str) -> tuple[Rule, ...]:
    """The rules in `path`, in order; `RulesError` naming what is wrong."""
    where = f"WARDEN_RULES ({path})"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{where}: cannot be read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise RulesError(f"{where}: unknown table or key {unknown[0]!r} (rules are [[rule]] tables)")
    raw = data.get("rule", [])
    if not isinstance(raw, list):
        raise RulesError(f"{where}: 'rule' must be an array of tables ([[rule]])")
    return tuple(_rule(item, n, where) for n, item in enumerate(raw, start=1))


def _rule(item: Any, number: int, where: str) -> Rule:
    def bad(key: str, message: str) -> RulesError:
        return RulesError(f"{where}: rule {number}, {key}: {message}")

    if not isinstance(item, dict):
        raise bad("rule", "must be a table")
    for key in item:
        if key not in _KEYS:
            raise bad(key, f"unknown key (known: {', '.join(sorted(_KEYS))})")
    match = item.get("match")
    if not isinstance(match, dict) or not match:
        raise bad("match", 'required: a table such as { room = "support-*" } or { sip = true }')
    for key in match:
        if key not in _MATCH_KEYS:
            raise bad(f"match.{key}", "unknown condition (known: room, sip)")
    room, sip = match.get("room", ""), match.get("sip")
    if not isinstance(room, str):
        raise bad("match.room", "must be a string (a glob on the room's name)")
    if sip is not None and not isinstance(sip, bool):
        raise bad("match.sip", "must be true or false")
    fields: dict[str, Any] = {"room": room, "sip": sip}
    if "agents" in item:
        agents = item["agents"]
        if not isinstance(agents, list) or not all(isinstance(a, str) and a.strip() for a in agents):
            raise bad("agents", "must be a list of agent names (non-empty strings)")
        if len(set(agents)) != len(agents):
            raise bad("agents", "names an agent twice")
        fields["agents"] = tuple(agents)
    if "unnamed_agents" in item:
        if not isinstance(item["unnamed_agents"], bool):
            raise bad("unnamed_agents", "must be true or false")
        fields["unnamed_agents"] = item["unnamed_agents"]
    fields.update(_terms(item, bad))
    fields.update(_for_named(item, bad, fields.get("agents")))
    fields.update(_fallback(item, bad))
    agent_id = item.get("cloud_agent_id", "")
    if not isinstance(agent_id, str) or (agent_id and not agent_id.startswith("CA_")):
        raise bad("cloud_agent_id", "must be a LiveKit Cloud agent id (CA_...)")
    hook = item.get("deploy_hook_url", "")
    if not isinstance(hook, str) or (hook and not hook.startswith(("http://", "https://"))):
        raise bad("deploy_hook_url", "must be an http:// or https:// URL (value not shown: it is a secret)")
    if agent_id and hook:
        raise bad("cloud_agent_id", "give cloud_agent_id or deploy_hook_url, not both")
    return Rule(number, cloud_agent_id=agent_id, deploy_hook_url=hook, **fields)


def _for_named(
    item: dict[str, Any], bad: Callable[[str, str], RulesError], agents: tuple[str, ...] | None
) -> dict[str, Any]:
    """The rule's keys that only a rule naming its agents may give (`canary`, `slo`), checked."""
    fields: dict[str, Any] = {}
    if "canary" in item:
        if not isinstance(item["canary"], bool):
            raise bad("canary", "must be true or false")
        if item["canary"] and not agents:
            raise bad("canary", "needs the rule's agents = [...]: a canary is placed for a named agent")
        fields["canary"] = item["canary"]
    if "slo" in item:
        slo = item["slo"]
        if isinstance(slo, bool) or not isinstance(slo, int | float) or not 0 < slo < 1:
            raise bad("slo", "must be a share between 0 and 1, both excluded (e.g. 0.995)")
        if not agents:
            raise bad("slo", "needs the rule's agents = [...]: an objective is a named agent's")
        fields["slo"] = float(slo)
    return fields


def _terms(item: dict[str, Any], bad: Callable[[str, str], RulesError]) -> dict[str, Any]:
    """The rule's SLAs, state limits and re-dispatches, checked."""
    fields: dict[str, Any] = {}
    for key, name in _NUMBERS.items():
        if key in item:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise bad(key, "must be a number of seconds, 0 or more")
            if value == 0 and key not in _ZERO_IS_OFF:
                raise bad(key, "must be more than 0")
            fields[name] = float(value)
    if "max_redispatches" in item:
        value = item["max_redispatches"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
            raise bad("max_redispatches", "must be a whole number from 0 to 20")
        fields["max_redispatches"] = value
    return fields


def _fallback(item: dict[str, Any], bad: Callable[[str, str], RulesError]) -> dict[str, Any]:
    """The rule's keys for protecting the person (issue 27), checked."""
    fields: dict[str, Any] = {}
    agent = item.get("fallback_agent")
    if agent is not None:
        if not isinstance(agent, str) or not agent.strip():
            raise bad("fallback_agent", "must be an agent name (a non-empty string)")
        fields["fallback_agent"] = agent.strip()
    after = item.get("fallback_after_seconds")
    if after is not None:
        if isinstance(after, bool) or not isinstance(after, int | float) or after <= 0:
            raise bad("fallback_after_seconds", "must be a number of seconds, more than 0")
        fields["fallback_after"] = float(after)
    for key in ("fallback_stays", "notify_room"):
        if key in item:
            if not isinstance(item[key], bool):
                raise bad(key, "must be true or false")
            fields[key] = item[key]
    to = item.get("fallback_transfer_to")
    if to is not None:
        if not isinstance(to, str):
            raise bad("fallback_transfer_to", NOT_A_TRANSFER_TARGET)
        try:
            check_transfer_target(to)
        except ValueError as exc:
            raise bad("fallback_transfer_to", str(exc)) from None
        fields["fallback_transfer_to"] = to
    return fields
