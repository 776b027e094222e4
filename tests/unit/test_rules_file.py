"""`WARDEN_RULES`: a rules file is read in order, and a mistake stops start-up naming the file, the rule
and the key (and never the value of a secret)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.core.room import Policy
from workers.core.rules import Rule, Rules
from workers.rules_file import RulesError, load_rules
from workers.settings import load_settings

GOOD = """
[[rule]]
match = { sip = true }
agents = ["receptionist"]
join_sla_seconds = 3

[[rule]]
match = { room = "support-*" }
agents = ["assistant", "notetaker"]
active_sla_seconds = 0
max_redispatches = 1
cloud_agent_id = "CA_notes"

[[rule]]
match = { room = "sales-*" }
unnamed_agents = true
deploy_hook_url = "https://deploy.example/hook?token=s3cret"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return str(path)


def test_rooms_match_the_first_rule_that_fits_and_its_settings_replace_the_environments(
    tmp_path: Path,
) -> None:
    environment = Policy(agent_name="helper", join_sla=15, active_sla=8)
    rules = Rules.of(load_rules(write(tmp_path, GOOD)), environment)
    policy, rule = rules.policy_for("support-12", sip=False)
    assert (rule.number, rule.agents, policy.max_redispatches, policy.active_sla) == (
        2,
        ("assistant", "notetaker"),
        1,
        None,
    )
    policy, rule = rules.policy_for("support-12", sip=True)  # a caller in it: the SIP rule comes first
    assert (rule.agents, policy.join_sla) == (("receptionist",), 3.0)
    _, rule = rules.policy_for("sales-3", sip=False)
    assert (rule.agents, rule.unnamed_agents) == (None, True)
    policy, rule = rules.policy_for("standup", sip=False)  # WARDEN_AGENT_NAME: the last rule
    assert (rule.agents, rule.source, policy.join_sla) == (("helper",), "setting", 15)
    assert rules.rule_for_agent("notetaker", "standup", False).cloud_agent_id == "CA_notes"
    # with no room (a restarted Warden settling open incidents) only rules naming the agent count
    catch_all = Rules.of(
        (
            Rule(1, room="sales-*", agents=("notetaker",), cloud_agent_id="CA_note"),
            Rule(2, agents=("assistant",), cloud_agent_id="CA_assist"),
        ),
        environment,
    )
    assert catch_all.rule_for_agent("notetaker", "", False).cloud_agent_id == "CA_note"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nagents = ['a']\n", "rule 1, match: required"),
        ("[[rule]]\nmatch = { room = 'x' }\njoin_sla_seconds = -1\n", "rule 1, join_sla_seconds"),
        (GOOD + "\n[[rule]]\nmatch = { phone = true }\n", "rule 4, match.phone: unknown condition"),
        ("[[rule]]\nmatch = { room = 'x' }\nagents = 'assistant'\n", "rule 1, agents: must be a list"),
        ("[[rule]]\nmatch = { room = 'x' }\ncloud_agent_id = 'notes'\n", "rule 1, cloud_agent_id"),
        ("[[rule]]\nmatch = { room = 'x' }\njoin_sla = 3\n", "rule 1, join_sla: unknown key"),
        ("[[rule]\nmatch = 1\n", "not valid TOML"),
        ("[[rule]]\nmatch = { sip = 'yes' }\n", "rule 1, match.sip: must be true or false"),
        ("[[rule]]\nmatch = { room = 'x' }\ncanary = true\n", "rule 1, canary: needs the rule's agents"),
        ("[[rule]]\nmatch = { room = 'x' }\nslo = 0.995\n", "rule 1, slo: needs the rule's agents"),
        ("[[rule]]\nmatch = { room = 'x' }\nagents = ['a']\nslo = 99.5\n", "rule 1, slo: must be a share"),
        ("[[rule]]\nmatch = { room = 'x' }\nagents = ['a']\nslo = true\n", "rule 1, slo: must be a share"),
        ("[[rule]]\nmatch = { room = 'x' }\nagents = ['a']\ncanary = 1\n", "rule 1, canary: must be true"),
        ("[[rule]]\nmatch = { room = 'x' }\nstuck_thinking_seconds = -5\n", "rule 1, stuck_thinking_seconds"),
        (
            "[[rule]]\nmatch = { room = 'x' }\nfallback_agent = ''\n",
            "rule 1, fallback_agent: must be an agent",
        ),
        ("[[rule]]\nmatch = { room = 'x' }\nfallback_after_seconds = 0\n", "rule 1, fallback_after_seconds"),
        (
            "[[rule]]\nmatch = { room = 'x' }\nfallback_stays = 'yes'\n",
            "rule 1, fallback_stays: must be true",
        ),
        ("[[rule]]\nmatch = { room = 'x' }\nnotify_room = 1\n", "rule 1, notify_room: must be true"),
        (
            "[[rule]]\nmatch = { sip = true }\nfallback_transfer_to = 5550100\n",
            "rule 1, fallback_transfer_to",
        ),
    ],
)
def test_a_bad_rules_file_stops_start_up_naming_the_file_the_rule_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as caught:
        load_settings(livekit_api_key="k", livekit_api_secret="s", warden_rules=path)
    assert message in str(caught.value) and f"WARDEN_RULES ({path})" in str(caught.value)


def test_canaries_come_from_the_environment_and_from_rules_with_their_join_sla(tmp_path: Path) -> None:
    text = (
        "[[rule]]\nmatch = { sip = true }\nagents = ['phone', 'voice']\njoin_sla_seconds = 4\ncanary = true\n"
    )
    settings = load_settings(
        livekit_api_key="k",
        livekit_api_secret="s",
        warden_rules=write(tmp_path, text),
        warden_canary_agents="voice,notes",
        warden_canary_every="2m",
    )
    found = {p.agent: (p.every, p.sla, p.failures) for p in settings.canaries()}
    assert found == {"voice": (120.0, 4.0, 2), "notes": (120.0, 15.0, 2), "phone": (120.0, 4.0, 2)}
    assert load_settings(livekit_api_key="k", livekit_api_secret="s").canaries() == ()


def test_a_deploy_hook_url_is_a_secret_even_in_an_error(tmp_path: Path) -> None:
    text = "[[rule]]\nmatch = { room = 'x' }\ndeploy_hook_url = 'ftp://deploy.example/s3cret'\n"
    with pytest.raises(RulesError) as caught:
        load_rules(write(tmp_path, text))
    assert "deploy_hook_url" in str(caught.value) and "s3cret" not in str(caught.value)


def test_a_missing_rules_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"WARDEN_RULES \(.*nope.toml\): no such file"):
        load_rules(str(tmp_path / "nope.toml"))


def test_the_stuck_limits_are_rule_keys_and_0_turns_a_states_rule_off(tmp_path: Path) -> None:
    text = (
        "[[rule]]\nmatch = { room = 'call-*' }\nstuck_initializing_seconds = 12\nstuck_thinking_seconds = 0\n"
    )
    settings = load_settings(
        livekit_api_key="k",
        livekit_api_secret="s",
        warden_rules=write(tmp_path, text),
        warden_stuck_thinking_seconds=45,
    )
    rules = settings.rules()
    call, _ = rules.policy_for("call-1", sip=False)
    other, _ = rules.policy_for("standup", sip=False)
    assert (call.stuck_initializing, call.stuck_thinking) == (12.0, None)
    assert (other.stuck_initializing, other.stuck_thinking) == (30.0, 45.0)  # the environment's
    off = load_settings(livekit_api_key="k", livekit_api_secret="s", warden_stuck_initializing_seconds=0)
    assert off.policy().stuck_initializing is None


def test_a_transfer_target_is_personal_data_even_in_an_error(tmp_path: Path) -> None:
    text = "[[rule]]\nmatch = { sip = true }\nfallback_transfer_to = '+15550100'\n"
    with pytest.raises(RulesError) as caught:
        load_rules(write(tmp_path, text))
    assert "fallback_transfer_to: must be a tel:+... number" in str(caught.value)
    assert "15550100" not in str(caught.value)


def test_the_fallback_keys_of_a_rule_replace_the_environments(tmp_path: Path) -> None:
    text = (
        "[[rule]]\nmatch = { sip = true }\nfallback_transfer_to = 'tel:+15550100'\nnotify_room = true\n"
        "[[rule]]\nmatch = { room = 'support-*' }\nfallback_agent = 'sorry'\nfallback_after_seconds = 45\n"
        "fallback_stays = true\n"
    )
    environment = Policy(fallback_agent="apology", notify_room=False)
    rules = Rules.of(load_rules(write(tmp_path, text)), environment)
    phone, _ = rules.policy_for("call-1", sip=True)
    assert (phone.fallback_transfer_to, phone.notify_room, phone.fallback_agent) == (
        "tel:+15550100",
        True,
        "apology",
    )
    support, _ = rules.policy_for("support-2", sip=False)
    assert (support.fallback_agent, support.fallback_after, support.fallback_stays) == ("sorry", 45.0, True)
    assert "15550100" not in repr(rules)


def test_a_rule_s_slo_is_its_agents_objective_the_others_take_warden_slo(tmp_path: Path) -> None:
    text = GOOD + "\n[[rule]]\nmatch = { room = 'vip-*' }\nagents = ['concierge']\nslo = 0.995\n"
    settings = load_settings(
        livekit_api_key="k", livekit_api_secret="s", warden_rules=write(tmp_path, text), warden_slo=0.98
    )
    assert settings.objectives(settings.rules().rules) == {"concierge": 0.995}
    assert settings.objective("assistant", settings.rules().rules) == 0.98
