"""The seconds each test module took when last measured, by which `tests.support.run` splits the suite into
shards of about equal length; and the command that measures them again.

    python -m tests.support.durations      the table below, from the JUnit reports of the last whole run
                                           (var/log/test-*.xml), to paste here when modules have grown

Only modules of 5 s or more are listed; another counts its tier's `DEFAULT_SECONDS`. Measured on the shared
2-core machine under load (seconds here are about twice those of a quiet machine); only their ratios
matter.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SECONDS = {
    "tests/component/test_outage_comeback_300.py": 296,
    "tests/component/test_fuzz_webhook.py": 149,
    "tests/e2e/test_recovery.py": 110,
    "tests/e2e/test_job_signals.py": 108,
    "tests/e2e/test_faults_escalation.py": 104,
    "tests/jobs": 97,
    "tests/e2e/test_agents.py": 91,
    "tests/e2e/test_escalation.py": 87,
    "tests/e2e/test_canaries.py": 81,
    "tests/component/test_openapi.py": 77,
    "tests/e2e/test_operator_surface.py": 72,
    "tests/e2e/test_dead_letters.py": 68,
    "tests/e2e/test_fallback.py": 65,
    "tests/unit": 53,
    "tests/e2e/test_devrun.py": 51,
    "tests/e2e/test_agent_state.py": 45,
    "tests/component/test_alert_routes.py": 43,
    "tests/component/test_escalation.py": 43,
    "tests/component/test_maintenance.py": 42,
    "tests/e2e/test_faults_outbox.py": 39,
    "tests/component/test_double_agents_property.py": 39,
    "tests/component/test_outbox_property.py": 36,
    "tests/component/test_dead_letters.py": 35,
    "tests/component/test_big_rooms.py": 35,
    "tests/component/test_canaries.py": 35,
    "tests/e2e/test_integration.py": 33,
    "tests/e2e/test_devrun_panel.py": 31,
    "tests/component/test_api.py": 30,
    "tests/component/test_operator_actions.py": 28,
    "tests/component/test_recovery.py": 27,
    "tests/e2e/test_maintenance.py": 27,
    "tests/e2e/test_faults.py": 27,
    "tests/component/test_dashboard.py": 25,
    "tests/e2e/test_observe.py": 23,
    "tests/component/test_deploy_tools.py": 22,
    "tests/component/test_escalation_comeback.py": 21,
    "tests/component/test_agents_property.py": 21,
    "tests/component/test_roles.py": 19,
    "tests/e2e/test_operator_actions.py": 19,
    "tests/component/test_group_store.py": 17,
    "tests/component/test_escalation_delivery.py": 16,
    "tests/component/test_recovery_property.py": 15,
    "tests/component/test_agent_state_views.py": 15,
    "tests/component/test_settings.py": 14,
    "tests/component/test_canary_views.py": 12,
    "tests/e2e/test_slo.py": 11,
    "tests/component/test_canary_capacity.py": 10,
    "tests/e2e/test_metric_names.py": 10,
    "tests/component/test_slow_clients.py": 10,
    "tests/component/test_query_plans.py": 10,
    "tests/component/test_double_agents.py": 10,
    "tests/component/test_borrowed_job_ids.py": 9,
    "tests/component/test_cli.py": 9,
    "tests/e2e/test_json_logs.py": 9,
    "tests/component/test_long_values.py": 9,
    "tests/component/test_slo_rules.py": 7,
    "tests/component/test_retention.py": 7,
    "tests/component/test_reconcile.py": 7,
    "tests/component/test_escalation_deployments.py": 6,
    "tests/component/test_webhook.py": 6,
    "tests/component/test_database_down.py": 6,
    "tests/component/test_standin_livekit.py": 6,
    # Not yet measured in a whole run: 4 s alone on the machine, about twice that under load.
    "tests/component/test_test_runner.py": 8,
}
# A module not measured yet: an e2e one starts Warden's processes and waits on SLAs.
DEFAULT_SECONDS = {"component": 2, "e2e": 30}


def seconds(path: str) -> float:
    """What `path` (a module, or the unit or jobs tier as a whole) is expected to take."""
    return SECONDS.get(path, DEFAULT_SECONDS.get(path.split("/")[1], 1))


def measured(reports: list[Path]) -> dict[str, int]:
    """Seconds by module (the unit and jobs tiers as one each) from pytest's JUnit reports."""
    found: Counter[str] = Counter()
    for report in reports:
        for case in ET.parse(report).getroot().iter("testcase"):
            parts = case.get("classname", "").split(".")
            key = "/".join(parts[:2]) if parts[1] in ("unit", "jobs") else "/".join(parts[:3]) + ".py"
            found[key] += float(case.get("time", 0))
    return {key: round(spent) for key, spent in found.most_common() if spent >= 5}


def main() -> int:
    reports = sorted((ROOT / "var" / "log").glob("test-*.xml"))
    if not reports:
        print("no JUnit reports in var/log: run the whole suite first (make test)", file=sys.stderr)
        return 1
    print("SECONDS = {")
    for key, spent in measured(reports).items():
        print(f'    "{key}": {spent},')
    print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
