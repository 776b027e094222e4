"""The metric names the Prometheus rules (`deploy/prometheus/`) and the Grafana dashboard
(`deploy/grafana/`) use, and the names Warden's processes expose; promtool (Debian's `prometheus`
package, which `make test` installs)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ROOT

RULES = ROOT / "deploy" / "prometheus" / "warden-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "warden-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "warden.json"
# The alerts the rules define.
ALERTS = frozenset(
    {
        "WardenNoWebhooks",
        "WardenQueueLagHigh",
        "WardenBreachRateHigh",
        "WardenIncidentOpen",
        "WardenWorkerDown",
        "WardenPassedOver",
        "WardenNoWorkerHeartbeat",
        "WardenDeadLetters",
        "WardenCanaryFailing",
    }
)
# Series Prometheus writes itself for every target, not exposed by any process.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# The sample names each metric type's family `f` exposes (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}

KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset"}
    | {"bool", "inf", "nan", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][\w:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers left once strings, label matchers, ranges,
    grouping clauses and Grafana variables are removed, less functions (followed by `(`) and keywords."""
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    found = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        found.add(name)
    return found


def rule_expressions(path: Path = RULES) -> dict[str, str]:
    """Each rule's name (alert or record) and its `expr`."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule.get("alert") or rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_expressions(board: dict[str, Any] | None = None) -> dict[str, str]:
    """Each panel target's expression (keyed by panel title and refId), and each templating query's."""
    board = board if board is not None else dashboard()
    found = {
        f"{panel['title']} / {target['refId']}": target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        values = _LABEL_VALUES.match(query)  # label_values(metric, label): the metric only
        found[f"${variable['name']}"] = values.group(1) if values else query
    return found


def exposed_names(exposition: str) -> set[str]:
    """Every sample name a `/metrics` text can hold, from its families' names and types (a labelled
    metric nothing has counted yet still has its HELP and TYPE lines)."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(exposition)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def promtool() -> str:
    """promtool's path; skip with a reason when it is missing, except under CI, where it must be there."""
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool not found (make test installs Debian's prometheus package)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


SLO_RULES = ROOT / "deploy" / "prometheus" / "warden-slo-rules.yml"
SLO_RULE_TESTS = ROOT / "deploy" / "prometheus" / "warden-slo-rules.test.yml"
