"""Hostile values for the output tests (issue 24: output is inert, numbers masked, long names bounded),
and rooms holding them recorded as the worker records webhooks: a room name that forges a log line and
a table row, terminal escape sequences, rich markup, a bidi override, phone numbers written with
separators, over-long names and identities (under PostgreSQL's 256-character columns), a crowd."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.webhooks import body, caller, person
from tests.support.events import parse
from workers.core.room import Policy
from workers.store.writer import record_event

FORGED_LINE = "2026-12-07 03:00:00,000 ERROR warden.worker: FORGED"
FORGING = f"evil\n{FORGED_LINE}"  # a room name that writes a line of its own
ESCAPES = "\x1b[2J\x1b]0;pwned\x07"  # clear the screen, retitle the terminal
RAW = ("\x1b", "\x07", "\u202e", "\r")  # none of these may reach a terminal, a log file or a page
MARKUP = "[/][blink]markup"  # rich markup: a closing tag with nothing to close stops rich
BIDI = "bidi\u202eevil"
SIP_ROOM, SIP_CALLER = "call-15550100-dashed", "phone-1-555-010-0123"
DIGITS = ("15550100", "555-010-0123", "5550100")  # what must not be shown of those numbers
LONG = "long-" + "x" * 245  # 250 characters: clipped to 200 with "…(50 more chars)"
LONG_IDENTITY = "p-" + "y" * 248
CROWD = [f"guest-{n:02}" for n in range(12)]  # twelve people: ten are listed, "and 2 more"

ROOMS: dict[str, tuple[str, list[dict[str, object]]]] = {  # sid: (name, who joined)
    "RM_forge": (FORGING, [person(f"caller{ESCAPES}", "PA_forge")]),
    "RM_markup": (MARKUP, [person("[red]who[/red]", "PA_markup")]),
    "RM_bidi": (BIDI, [person("alice\u202e", "PA_bidi")]),
    "RM_sip": (SIP_ROOM, [caller(SIP_CALLER, "+15550100123", "PA_sip")]),
    "RM_long": (LONG, [person(LONG_IDENTITY, "PA_long")]),
    "RM_crowd": ("crowd", [person(who) for who in CROWD]),
}
POLICY = Policy("notetaker", join_sla=15.0)


async def record_rooms(engine: AsyncEngine, at: float) -> None:
    """Each of `ROOMS` started at `at`, its people joined a second later (no agent: all waiting)."""
    for sid, (name, people) in ROOMS.items():
        events = [("room_started", {})] + [("participant_joined", {"participant": p}) for p in people]
        for n, (event, extra) in enumerate(events):
            raw = body(event, id=f"EV_{sid}_{n}", created_at=int(at + min(n, 1)), room=name, sid=sid, **extra)
            await record_event(engine, parse(raw), received_at=at + min(n, 1), rules=POLICY)
