"""`warden slo rules` (issue 29): the Prometheus rules it prints are `deploy/prometheus/warden-slo-rules.yml`
for the default settings, pass `promtool check rules`, and its unit tests (`promtool test rules`: a burn
that pages, one that only tickets, one that fires nothing) pass and bind the thresholds; a rule's `slo`
gets alerts of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT
from tests.support.promql import SLO_RULE_TESTS, SLO_RULES, promtool
from tests.support.settings import KEY, SECRET


def slo_rules(**env: str) -> str:
    """`warden slo rules` as an operator runs it, with only these settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "LIVEKIT_"))}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "slo", "rules"],
        env={**clean, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_deployed_rules_are_the_command_s_output_for_the_default_settings(tmp_path: Path) -> None:
    assert slo_rules(HOME=str(tmp_path)) == SLO_RULES.read_text()


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    checked = run_promtool("check", "rules", SLO_RULES.name, cwd=SLO_RULES.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout  # 5 windows recorded, a page and a ticket
    tested = run_promtool("test", "rules", SLO_RULE_TESTS.name, cwd=SLO_RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_unit_tests_catch_a_changed_ticket_threshold(tmp_path: Path) -> None:
    rules = SLO_RULES.read_text().replace("> (1 * 0.01)", "> (3 * 0.01)")
    assert rules != SLO_RULES.read_text()
    (tmp_path / SLO_RULES.name).write_text(rules)
    (tmp_path / SLO_RULE_TESTS.name).write_text(SLO_RULE_TESTS.read_text())
    done = run_promtool("test", "rules", SLO_RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0 and "WardenServedBudgetBurn" in done.stdout + done.stderr


def test_an_agent_s_own_objective_gets_alerts_of_its_own_and_the_others_keep_warden_slo(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nmatch = { room = "vip-*" }\nagents = ["concierge"]\nslo = 0.995\n'
    )
    text = slo_rules(WARDEN_RULES=str(tmp_path / "rules.toml"), WARDEN_SLO="0.98")
    assert 'agent="concierge"} > (14.4 * 0.005)' in text
    assert 'sli="served",agent!~"concierge"} > (14.4 * 0.02)' in text
    (tmp_path / "warden-slo-rules.yml").write_text(text)
    checked = run_promtool("check", "rules", "warden-slo-rules.yml", cwd=tmp_path)
    assert checked.returncode == 0 and "SUCCESS: 9 rules found" in checked.stdout, (
        checked.stdout + checked.stderr
    )


def test_agents_whose_names_differ_only_in_punctuation_get_groups_promtool_accepts(tmp_path: Path) -> None:
    """Group names are made of the agent's name's letters: `sales.bot` and `sales-bot` must not make one
    group name twice (Prometheus refuses the whole file)."""
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nmatch = { room = "a-*" }\nagents = ["sales.bot"]\nslo = 0.995\n'
        '[[rule]]\nmatch = { room = "b-*" }\nagents = ["sales-bot"]\nslo = 0.999\n'
    )
    text = slo_rules(WARDEN_RULES=str(tmp_path / "rules.toml"))
    (tmp_path / "warden-slo-rules.yml").write_text(text)
    checked = run_promtool("check", "rules", "warden-slo-rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
