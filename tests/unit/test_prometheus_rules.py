"""The Prometheus rules give every alert a severity, a wait and words, and a unit test; the Grafana
dashboard is an importable dashboard; the PromQL name reader finds every metric name.

(promtool on the rules and their unit tests: tests/component/test_promtool.py. Whether the names are ones
Warden's processes really expose: tests/e2e/test_metric_names.py.)"""

from __future__ import annotations

import pytest
import yaml

from tests.support.promql import (
    ALERTS,
    RULE_TESTS,
    RULES,
    SLO_RULE_TESTS,
    SLO_RULES,
    dashboard,
    dashboard_expressions,
    exposed_names,
    metric_names,
    rule_expressions,
)


def test_every_alert_has_a_severity_a_wait_and_words_for_people() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["for"], rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_rules_read_wardens_metrics_and_prometheus_up_only() -> None:
    names = {name: metric_names(expr) for name, expr in rule_expressions().items()}
    assert set(names) == ALERTS and all(names.values())
    assert all(n == "up" or n.startswith("warden_") for found in names.values() for n in found), names


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert tested == ALERTS


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert (board["uid"], board["title"]) == ("warden", "Warden")
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    required = {r["id"] for r in board["__requires"] if r["type"] == "panel"}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in required, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        mine = {(box["x"] + dx, box["y"] + dy) for dx in range(box["w"]) for dy in range(box["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        refs = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]
        assert all(t["datasource"] == panel["datasource"] and t["expr"] for t in panel["targets"])


def test_the_dashboard_shows_what_operators_look_for_by_agent() -> None:
    expressions = dashboard_expressions()
    for family in ("warden_sla_breaches_total", "warden_redispatches_total", "warden_restarts_total"):
        assert any(family in e and "sum by (agent)" in e for e in expressions.values()), family
    assert any(
        "warden_time_to_agent_seconds_bucket" in e and "sum by (agent, le)" in e for e in expressions.values()
    )
    assert any("sum by (verdict)" in e and "warden_webhooks_total" in e for e in expressions.values())
    assert any("warden_queue_lag_seconds" in e for e in expressions.values())


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("max(warden_open_incidents) > 0", {"warden_open_incidents"}),
        ('up{job="warden-worker"} == 0', {"up"}),
        (
            'absent(warden_jobs_total{function="sweep"})'
            ' or sum(rate(warden_jobs_total{function="x"}[5m])) == 0',
            {"warden_jobs_total"},
        ),
        (
            "histogram_quantile(0.9, sum by (agent, le)"
            ' (rate(warden_a_bucket{agent=~"$agent"}[$__rate_interval])))',
            {"warden_a_bucket"},
        ),
        ("sum(rate(a_total[5m] offset 1h)) by (code) / ignoring(code) group_left b", {"a_total", "b"}),
        ('count_over_time(x{l="sum(y)"}[1h:5m]) * 1e3 + scalar(z)', {"x", "z"}),
        ("warden_dead_letters", {"warden_dead_letters"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_templating_query_names_its_metric_not_its_label() -> None:
    board = {
        "panels": [],
        "templating": {"list": [{"name": "agent", "query": {"query": "label_values(m_count, agent)"}}]},
    }
    assert dashboard_expressions(board) == {"$agent": "m_count"}


def test_exposed_names_include_each_types_samples_even_before_the_first_count() -> None:
    text = (
        "# HELP a_total A counter\n# TYPE a_total counter\n"
        "# HELP h A histogram\n# TYPE h histogram\n"
        "# HELP g A gauge\n# TYPE g gauge\ng 1.0\n"
    )
    assert exposed_names(text) == {
        "a_total",
        "a_created",
        "h_bucket",
        "h_sum",
        "h_count",
        "h_created",
        "g",
    }


def test_the_service_levels_rules_read_the_sli_counter_and_their_own_records_only() -> None:
    groups = yaml.safe_load(SLO_RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    alerts = [rule for rule in rules if "alert" in rule]
    assert recorded == {f"warden:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h", "3d")}
    assert [(a["alert"], a["labels"]["severity"]) for a in alerts] == [
        ("WardenServedBudgetBurn", "page"),
        ("WardenServedBudgetBurn", "ticket"),
    ]
    for rule in rules:
        assert metric_names(rule["expr"]) <= {"warden_sli_events_total", *recorded}, rule
    for alert in alerts:
        assert alert["for"] and alert["annotations"]["summary"] and alert["annotations"]["description"]
    tests = yaml.safe_load(SLO_RULE_TESTS.read_text())["tests"]
    assert {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])} == {
        "WardenServedBudgetBurn"
    }
