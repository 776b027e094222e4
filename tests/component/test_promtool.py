"""The Prometheus rules pass `promtool check rules` and their unit tests (`promtool test rules`), and the
unit tests bind the rules (promtool is Debian's `prometheus` package, which `make test` installs; missing,
these skip, and under CI fail). The rules' other checks: tests/unit/test_prometheus_rules.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.promql import ALERTS, RULE_TESTS, RULES, promtool


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules() -> None:
    done = run_promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_the_rules_unit_tests_pass() -> None:
    done = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rules_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests bind the rules: lag alerting from 60 s instead of 30 s fails them."""
    rules = RULES.read_text().replace(
        "max(warden_queue_lag_seconds) > 30", "max(warden_queue_lag_seconds) > 60"
    )
    assert rules != RULES.read_text()
    (tmp_path / RULES.name).write_text(rules)
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    done = run_promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0 and "WardenQueueLagHigh" in done.stdout + done.stderr
