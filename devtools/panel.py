"""`make run`'s status panel: what Warden is doing, read each second from the web process's `/metrics`
(rooms by phase, open incidents, dead letters) and the worker's (re-dispatches, restarts, SLA breaches),
over loopback. Both are counts only and served without credentials, so the panel needs none."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

PHASE_ORDER = (
    "waiting",
    "agent_present",
    "agent_active",
    "agent_lost",
    "no_agent_expected",
    "idle",
    "closed",
)
READ_TIMEOUT_SECONDS = 0.8


@dataclass(frozen=True)
class Links:
    """Where things are, as shown to the person running `make run`."""

    dashboard: str
    metrics: str
    worker_metrics: str
    logs: str
    notes: tuple[str, ...] = ()

    @property
    def webhook(self) -> str:
        return f"{self.dashboard}webhook"


@dataclass
class Status:
    """One reading of both metrics endpoints; None where a process did not answer."""

    rooms: dict[str, int] | None = None
    open_incidents: int = 0
    dead_letters: int = 0
    redispatched: int | None = None
    restarts: int = 0
    breaches: int = 0
    webhooks: int = 0
    read_at: float = field(default_factory=time.time)


def _samples(client: httpx.Client, url: str) -> Iterable[tuple[str, dict[str, str], float]] | None:
    try:
        response = client.get(url, timeout=READ_TIMEOUT_SECONDS)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return [
        (s.name, s.labels, s.value) for f in text_string_to_metric_families(response.text) for s in f.samples
    ]


def read_status(client: httpx.Client, metrics_url: str, worker_metrics_url: str) -> Status:
    status = Status()
    web = _samples(client, metrics_url)
    if web is not None:
        status.rooms = {}
        for name, labels, value in web:
            if name == "warden_rooms":
                status.rooms[labels.get("phase", "?")] = int(value)
            elif name == "warden_open_incidents":
                status.open_incidents = int(value)
            elif name == "warden_dead_letters":
                status.dead_letters = int(value)
            elif name == "warden_webhooks_total" and labels.get("verdict") == "queued":
                status.webhooks += int(value)
    worker = _samples(client, worker_metrics_url)
    if worker is not None:
        status.redispatched = 0
        for name, labels, value in worker:
            if name == "warden_redispatches_total" and labels.get("outcome") == "dispatched":
                status.redispatched += int(value)
            elif name == "warden_restarts_total" and labels.get("outcome") == "ok":
                status.restarts += int(value)
            elif name == "warden_sla_breaches_total":
                status.breaches += int(value)
    return status


def _rooms_line(rooms: dict[str, int] | None) -> Text:
    if rooms is None:
        return Text("web process not answering yet", style="yellow")
    # The web reports every phase; those no room is in are left out, to keep the line short.
    shown = {phase for phase, count in rooms.items() if count}
    phases = [p for p in PHASE_ORDER if p in shown] + sorted(shown - set(PHASE_ORDER))
    line = Text()
    for i, phase in enumerate(phases or ["waiting"]):
        if i:
            line.append(" · ", style="dim")
        style = "red" if phase == "agent_lost" and rooms.get(phase) else ""
        line.append(f"{phase.replace('_', ' ')} ", style=style)
        line.append(str(rooms.get(phase, 0)), style="bold " + style)
    return line


def render(status: Status | None, links: Links, state: str) -> RenderableType:
    """The panel: `state` (starting, running...) in its title; `status` None before the first reading."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    if status is None:
        table.add_row("Rooms", Text("starting…", style="yellow"))
    else:
        table.add_row("Rooms", _rooms_line(status.rooms))
        recoveries = (
            Text("worker not answering yet", style="yellow")
            if status.redispatched is None
            else Text(
                f"re-dispatched {status.redispatched} · restarts {status.restarts} · "
                f"SLA breaches {status.breaches} (since the worker started)"
            )
        )
        table.add_row("Recoveries", recoveries)
        table.add_row(
            "Incidents",
            Text(f"{status.open_incidents} open", style="bold red" if status.open_incidents else ""),
        )
        table.add_row(
            "Dead letters", Text(str(status.dead_letters), style="bold red" if status.dead_letters else "")
        )
        table.add_row("Webhooks", f"{status.webhooks} queued")
    table.add_row("", "")
    table.add_row("Dashboard", links.dashboard)
    table.add_row("Webhook", f"POST {links.webhook}")
    table.add_row("Metrics", f"{links.metrics} · worker {links.worker_metrics}")
    table.add_row("Logs", links.logs)
    notes = [Text(note, style="dim") for note in links.notes]
    updated = time.strftime("%H:%M:%S", time.localtime(status.read_at)) if status else "-"
    return Panel(
        Group(table, *notes, Text("Ctrl-C stops everything", style="dim")),
        title=f"Warden · make run · {state}",
        subtitle=f"updated {updated}",
        title_align="left",
        expand=False,
    )
