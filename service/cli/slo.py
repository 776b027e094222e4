"""`warden slo`: each agent's service levels through the API (`service.api.slo`): on time, served, the
objective, the budget left and the last hour's burn rate. `warden slo rules`: Prometheus rules for the
configured objectives (`service.cli.slo_rules`), from the settings, no running Warden needed."""

from __future__ import annotations

import sys
from typing import Any

from rich.table import Table

from service.cli.slo_rules import rules_yaml
from service.cli.views import cell, console, failed, fetch
from workers.core.errors import SettingsError
from workers.settings import load_settings


def _share(level: dict[str, Any]) -> str:
    ratio = level["ratio"]
    shown = "-" if ratio is None else f"{ratio * 100:.2f} %"
    return f"{shown} ({level['good']}/{level['total']})"


def _budget(value: float) -> str:
    colour = "green" if value > 0.25 else "yellow" if value > 0 else "red"
    return f"[{colour}]{value * 100:.1f} %[/]"


def slo(url: str) -> int:
    status, data = fetch(url, "/api/slo")
    if status != 200:
        return failed(status, data)
    out = console()
    if not data["agents"]:
        out.print("No rooms counted yet: a room counts once its agent came, or it ended without it.")
        return 0
    table = Table()
    for column in ("agent", "on time", "served", "objective", "budget left", "burn rate (1 h)", "window"):
        table.add_column(column)
    for agent in data["agents"]:
        table.add_row(
            cell(agent["agent"]),
            _share(agent["on_time"]),
            _share(agent["served"]),
            f"{agent['objective'] * 100:g} %",
            _budget(agent["budget_remaining"]),
            f"{agent['burn_rate_1h']:.2f}x",
            cell(agent["window"]),
        )
    out.print(table)
    return 0


def rules() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"warden: configuration error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(rules_yaml(settings.objectives(settings.rules().rules), settings.warden_slo))
    return 0
