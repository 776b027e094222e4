"""`warden`: the operator's command line.

    warden rooms [--state S]      rooms, newest first          (reads a running Warden's API)
    warden room NAME              one room and its timeline
    warden incidents              open and past incidents
    warden incident ack ID        acknowledge an incident: no more follow-up alerts (operators)
    warden incident restart ID    restart the incident's deployment now (its cooldown applies)
    warden redispatch ROOM AGENT  re-dispatch one expected agent of a room now (Warden's own checks)
    warden dead-letters           jobs that failed for good, newest first
    warden canaries               each agent's canaries: last success, failures in a row, latest runs
    warden slo                    each agent's service levels: on time, served, budget left, burn rate
    warden slo rules              Prometheus recording and burn-rate alert rules for the objectives
    warden retry ID               queue a dead letter's job again, once its cause is fixed
    warden maintenance start --agent NAME|'*' --minutes N [--reason TEXT]
                                  no restart and no alert for that agent (or any) meanwhile
    warden maintenance list       active and recent maintenance windows, newest first
    warden maintenance end ID     end a maintenance window now
    warden check                  settings, LiveKit, Redis and the database, in plain words
    warden replay FILE            re-send recorded webhook bodies (JSON lines), signed, to /webhook

The API commands find Warden at `--url` (or `WARDEN_URL`, default http://127.0.0.1:$PORT) and send
`WARDEN_TOKEN` (one token of `WARDEN_TOKENS`, the token alone: a viewer's reads, `warden retry` needs an
operator's) or else `WARDEN_ADMIN_TOKEN`, when set. Exit status: 0 fine, 1 a check or request failed,
2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from service.cli import canaries, check, dead_letters, maintenance, operator, replay, slo, views


def default_url() -> str:
    return os.environ.get("WARDEN_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="warden", description="Warden: every LiveKit room gets its agent.")
    top.add_argument("--url", default=default_url(), help="Warden's base URL (default: %(default)s)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rooms = commands.add_parser("rooms", help="list rooms, newest first")
    rooms.add_argument("--state", help="only rooms in this state (waiting, agent_active, ...)")
    rooms.add_argument("--limit", type=int, default=50)
    room = commands.add_parser("room", help="one room with its timeline")
    room.add_argument("name")
    commands.add_parser("incidents", help="open and past incidents")
    one = commands.add_parser("incident", help="act on an incident: ack, restart")
    one.add_argument("action", choices=("ack", "restart"))
    one.add_argument("id", help="the incident's id, as `warden incidents` lists it")
    again = commands.add_parser("redispatch", help="re-dispatch one agent of a room now")
    again.add_argument("room")
    again.add_argument("agent", help="the agent's name (one the room expects)")
    commands.add_parser("dead-letters", help="jobs that failed for good, newest first")
    canary = commands.add_parser("canaries", help="each agent's canaries: last success, latest runs")
    canary.add_argument("--limit", type=int, default=10, help="runs per agent (default: %(default)s)")
    levels = commands.add_parser("slo", help="each agent's service levels (`slo rules`: Prometheus rules)")
    levels.add_argument(
        "what", nargs="?", choices=["rules"], help="print Prometheus rules for the objectives"
    )
    retry = commands.add_parser("retry", help="queue a dead letter's job again (once its cause is fixed)")
    retry.add_argument("id", help="the dead letter's id, as `warden dead-letters` lists it")
    maintenance.add_commands(commands)
    commands.add_parser("check", help="check settings, LiveKit, Redis and the database")
    rep = commands.add_parser("replay", help="re-send recorded webhook bodies (JSON lines) to Warden")
    rep.add_argument("file", help="one webhook body (JSON) per line; '-' reads standard input")
    return top


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    match args.command:
        case "rooms":
            code = views.rooms(args.url, state=args.state, limit=args.limit)
        case "room":
            code = views.room(args.url, args.name)
        case "incidents":
            code = views.incidents(args.url)
        case "incident":
            code = operator.incident(args.url, args.action, args.id)
        case "redispatch":
            code = operator.redispatch(args.url, args.room, args.agent)
        case "dead-letters":
            code = dead_letters.dead_letters(args.url)
        case "canaries":
            code = canaries.canaries(args.url, limit=args.limit)
        case "slo":
            code = slo.rules() if args.what == "rules" else slo.slo(args.url)
        case "retry":
            code = dead_letters.retry(args.url, args.id)
        case "maintenance":
            code = maintenance.run(args.url, args)
        case "check":
            code = asyncio.run(check.run())
        case "replay":
            code = asyncio.run(replay.run(args.url, args.file))
        case _:  # pragma: no cover - argparse refuses unknown commands
            code = 2
    sys.exit(code)
