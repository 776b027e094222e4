"""`python -m devtools.simulate`: a stand-in LiveKit (Twirp API on `--port`, 7880 like
`livekit-server --dev`) and simulated rooms whose signed webhooks go to a Warden, with failures
injected; a progress bar, then a summary of what was injected and what Warden did. Point Warden's
`LIVEKIT_URL` at the stand-in (the `make run` defaults already do) and, for outages, `LK_AGENTS_URL`
and `WARDEN_CLOUD_AGENT_ID` too."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from collections.abc import Sequence

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from devtools.simulator.world import FATES, FailurePlan, Report, Simulation, parse_failures
from workers.logs import allow_dev_keys

CLOUD_AGENT_ID = "CA_simulated"


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected MIN-MAX seconds, e.g. 20-40") from None
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"'{text}': expected 0 < MIN <= MAX")
    return pair


def _failures(text: str) -> FailurePlan:
    try:
        return parse_failures(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': a share of rooms from 0 to 1") from None
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(f"'{text}': a share of rooms from 0 to 1")
    return share


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rooms", type=int, default=20, help="rooms to simulate (default 20)")
    p.add_argument("--over", type=float, help="seconds over which rooms arrive (default: rooms / 2)")
    p.add_argument(
        "--failure",
        type=_failures,
        default=FailurePlan(),
        help="e.g. never-joins:0.1,stuck:0.05,outage:30+20,quiet:90+60,sleepy:15,full:120+30",
    )
    p.add_argument("--meeting", type=_range, default=(20.0, 40.0), help="meeting length MIN-MAX s (20-40)")
    p.add_argument("--port", type=int, default=7880, help="the stand-in LiveKit's port (default 7880)")
    p.add_argument("--agent-name", default=os.environ.get("WARDEN_AGENT_NAME") or "agent")
    p.add_argument(
        "--second-agent", default="", help="a second agent dispatched beside the first (e.g. notetaker)"
    )
    p.add_argument("--second", type=_share, default=0.0, help="share of rooms with the second agent (0-1)")
    p.add_argument("--sip", type=_share, default=0.0, help="share of rooms that are phone calls (0-1)")
    p.add_argument(
        "--fallback-agent",
        default="",
        help="an agent on other workers that answers every dispatch of it (Warden's fallback, e.g. apology)",
    )
    p.add_argument("--key", default=os.environ.get("LIVEKIT_API_KEY") or "devkey")
    p.add_argument("--secret", default=os.environ.get("LIVEKIT_API_SECRET") or "secret")
    p.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    p.add_argument("--forever", action="store_true", help="a new room every few seconds until Ctrl-C (demo)")


def run(args: argparse.Namespace) -> int:
    allow_dev_keys({args.key: args.secret})  # the default keys are livekit-server --dev's short pair
    try:
        return asyncio.run(simulate(args))
    except KeyboardInterrupt:
        return 0


async def simulate(args: argparse.Namespace) -> int:
    out = Console(highlight=False, soft_wrap=True)
    fake = FakeLiveKit(args.key, args.secret, cloud_agents={CLOUD_AGENT_ID: args.agent_name})
    async with serve(fake.app, port=args.port) as livekit_url, httpx.AsyncClient(timeout=10.0) as client:
        sim = Simulation(
            fake,
            client,
            f"{args.url.rstrip('/')}/webhook",
            args.agent_name,
            args.failure,
            rng=random.Random(args.seed),
            meeting=args.meeting,
            second_agent=args.second_agent,
            second=args.second,
            sip=args.sip,
            fallback_agent=args.fallback_agent,
            say=out.print,
        )
        out.print(
            f"stand-in LiveKit on {livekit_url} (key {args.key}, Cloud agent {CLOUD_AGENT_ID}); "
            f"webhooks to {sim.webhook_url}"
        )
        if args.forever:
            await sim.forever(every=max(1.0, sum(args.meeting) / 2 / 8))  # about eight live rooms
            return 0
        columns = (TextColumn("rooms"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=out, transient=True) as progress:
            bar = progress.add_task("rooms", total=args.rooms)
            sim.on_room_done = lambda: progress.advance(bar)
            report = await sim.run(args.rooms, over=args.over if args.over is not None else args.rooms / 2)
    out.print(summary(report))
    if report.unserved:
        out.print(f"[red]{report.unserved} room(s) ended without a working agent.[/red]")
    return 0 if report.unserved == 0 and report.webhook_errors == 0 else 1


def summary(report: Report) -> Table:
    table = Table(title=f"{report.rooms} rooms simulated, {report.webhooks} webhooks sent")
    table.add_column("injected")
    table.add_column("rooms", justify="right")
    table.add_column("had a working agent at the end", justify="right")
    for fate in ("ok", *FATES):
        if report.injected[fate]:
            table.add_row(fate.replace("_", "-"), str(report.injected[fate]), str(report.served[fate]))
    if report.second_rooms:
        table.add_row("with a second agent", str(report.second_rooms), str(report.second_served))
    if report.sip_rooms:
        table.add_row("phone calls (SIP)", str(report.sip_rooms), "")
    if report.outage_rooms:
        table.add_row("outage (first dispatch lost)", str(report.outage_rooms), str(report.outage_served))
    table.add_section()
    table.add_row("Warden: re-dispatches", str(report.warden_dispatches), "")
    table.add_row("Warden: agents evicted", str(report.evictions), "")
    table.add_row("Warden: Cloud agent restarts", str(report.restarts), "")
    if report.swallowed:
        table.add_row("dispatches a sleeping deployment swallowed", str(report.swallowed), "")
    if report.refused:
        table.add_row("jobs a full deployment refused (JSR_NO_CAPACITY)", str(report.refused), "")
    if report.fallback_agents:
        table.add_row(
            "Warden: fallback agents (removed when the agent came)", str(report.fallback_agents), ""
        )
        table.add_row("  of which removed", str(report.fallback_removed), "")
    if report.transfers:
        table.add_row("Warden: phone callers transferred to people", str(report.transfers), "")
    if report.notices:
        table.add_row("Warden: status messages to rooms (warden.status)", str(report.notices), "")
    if report.webhook_errors:
        table.add_row("[red]webhooks not accepted[/red]", str(report.webhook_errors), "")
    return table


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.simulate", description="A stand-in LiveKit with simulated rooms."
    )
    url = os.environ.get("WARDEN_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
    p.add_argument("--url", default=url, help="Warden's base URL (default: %(default)s)")
    add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(parser().parse_args(argv)))


if __name__ == "__main__":
    main()
