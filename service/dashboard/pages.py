"""The dashboard: `/` (rooms), `/rooms/{name}` (one room's timeline), `/incidents` (and `/dead-letters`
and `/canaries`, in `service.dashboard.dead_letters` and `.canaries`). Server-rendered with Jinja2;
each page refreshes its live part by fetching itself with `?fragment=1` (no build step, no CDN).
Same access rules as the API (see `service.api.auth`); a browser is asked for a token by Basic auth.
Every template knows who is signed in (`signed_in`): `caller` (a `Caller`: name and role) and
`is_operator`, which an operator's button is shown under (`{% if is_operator %}`): a viewer's POST would
be refused anyway.

What it shows of values Warden was sent is bounded and inert, where the API keeps them whole: names and
identities are masked and clipped here (`workers.core.shown`, a 1 MB room name is a line, not a 2 MB
page), lists of identities show their first few, and every value any template writes passes the
environment's `finalize`, which escapes control characters (a bidi override would reorder the rest of
a cell, a newline is a title's line break) and clips what was missed, after which Jinja escapes HTML."""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from service.api.auth import Caller, authenticate, tokenless_refusal
from service.api.cross_site import cross_site_refusal
from service.api.rooms import room_summary, timeline_entry
from service.dashboard.charts import (
    Deadline,
    Mark,
    Span,
    histogram_bars,
    histogram_svg,
    percentile,
    timeline_svg,
)
from workers.core.observing import would
from workers.core.room import ROOM_STATES, time_to_agent
from workers.core.shown import TEXT_CHARS, fit, listed, shown
from workers.store import maintenance
from workers.store.dead_letters import waiting_count
from workers.store.incidents import list_incidents
from workers.store.log_rows import ACTION_KIND
from workers.store.maintenance import hhmm
from workers.store.queries import TimelineEntry, confirmations, find_room, list_rooms
from workers.store.stats import open_incidents_by_room, phase_counts, time_to_agent_since


def signed_in(request: Request) -> dict[str, Any]:
    """Who the page is for, in every template's context: `caller` and `is_operator` (None and False on
    a page rendered before anyone was authorised: no operator's button on it)."""
    who = getattr(request.state, "caller", None)
    if not isinstance(who, Caller):
        return {"caller": None, "is_operator": False}
    return {"caller": who, "is_operator": who.role == "operator"}


STATIC = Path(__file__).parent / "static"
TEMPLATES = Jinja2Templates(
    directory=str(Path(__file__).parent / "templates"), context_processors=[signed_in]
)
PAGE_ROOMS = 100
WINDOWS = {"hour": 3600.0, "day": 86400.0}
SLA_NAMES = {
    "join": "join SLA",
    "rejoin": "rejoin SLA",
    "active": "active SLA",
    "confirm": "re-dispatch check",
    "stuck_initializing": "stuck initializing",
    "stuck_thinking": "stuck thinking",
}
JOINS = ("participant_joined",)
LEAVES = ("participant_left", "participant_connection_aborted")

Page = Callable[[Request], Awaitable[Response]]


def seconds(value: float) -> str:
    """A duration for people: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"


def ago(stamp: str | None, now: float) -> str:
    """An ISO time from the API as "12 s ago"."""
    if not stamp:
        return "-"
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return f"{seconds(max(0.0, now - then))} ago"


def clock(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M:%S.%f")[:-3]


def when(stamp: float | None) -> str:
    return "" if stamp is None else datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def inert_output(value: Any) -> Any:
    """What a template writes: text inert and bounded (not masked: ids are shown as they are, to be
    typed back); Markup (the charts) is the page's own."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return shown(value, TEXT_CHARS, mask=False)
    return value


TEMPLATES.env.finalize = inert_output  # before any template is compiled: Jinja reads it then
TEMPLATES.env.filters.update(
    seconds=seconds,
    ago=ago,
    clock=clock,
    when=when,
    hhmm=hhmm,
    phase=lambda p: str(p).replace("_", " "),
    listed=lambda names: listed([str(n) for n in names]),
    masked=lambda text: fit(str(text), TEXT_CHARS),  # free text a person wrote: phone numbers masked
)


# No page of the dashboard may be framed by another site (clickjacking its retry button): CSP's
# `frame-ancestors` for today's browsers, X-Frame-Options for older ones.
NO_FRAMING = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}


def shown_room(summary: dict[str, Any]) -> dict[str, Any]:
    """A room from `room_summary` as the dashboard shows it: its names and identities masked and
    clipped (the API keeps them whole)."""
    recovery = summary["recovery"]
    return {
        **summary,
        "name": fit(summary["name"]),
        "people": [{**p, "identity": fit(p["identity"])} for p in summary["people"]],
        "agents": [
            {**a, "identity": fit(a["identity"]), "agent_name": fit(a["agent_name"] or "")}
            for a in summary["agents"]
        ],
        "expected": [{**e, "agent_name": fit(e["agent_name"] or "")} for e in summary["expected"]],
        "recovery": {**recovery, "error": recovery["error"] and fit(recovery["error"], TEXT_CHARS)},
    }


def page(endpoint: Page) -> Page:
    """Guard a page like the API; a refusal is a short HTML page (401 asks the browser for the token).
    Every answer, refusals included, forbids framing."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        response = await _guarded(endpoint, request)
        response.headers.update(NO_FRAMING)
        return response

    return guarded


async def _guarded(endpoint: Page, request: Request) -> Response:
    # A form posted from another site: 403 before its credentials are read, as `operator_only` answers
    # (a 401 would have the browser ask its user for them on that site's behalf).
    cross_site = cross_site_refusal(request) if request.method not in ("GET", "HEAD") else None
    if cross_site is not None:
        return HTMLResponse(f"<!doctype html><title>Warden</title><p>{html.escape(cross_site)}</p>", 403)
    refusal = authenticate(request)
    if refusal is None:
        if request.query_params.get("fragment") != "1":  # the banner of a whole page (`base.html`)
            request.state.maintenance = await maintenance.active(request.state.engine, time.time())
        return await endpoint(request)
    message = "Sign in with any user name and your token (WARDEN_TOKENS, WARDEN_ADMIN_TOKEN) as the password."
    if refusal.status_code == 403:
        message = f"{tokenless_refusal(request, 'the dashboard')}."
    return HTMLResponse(
        f"<!doctype html><title>Warden</title><p>{html.escape(message)}</p>",
        status_code=refusal.status_code,
        headers={k: v for k, v in refusal.headers.items() if k == "www-authenticate"},
    )


def render(request: Request, name: str, context: dict[str, Any]) -> Response:
    fragment = request.query_params.get("fragment") == "1"
    template = f"_{name}_live.html" if fragment else f"{name}.html"
    # What the last form button did (issue 28), shown only when this page was reached from Warden's own
    # (the form's redirect): another site's link cannot put words on an operator's page.
    from_here = request.headers.get("sec-fetch-site", "same-origin") == "same-origin"
    said = request.query_params.get("said", "") if from_here else ""
    observing = request.state.settings.observing  # the web's WARDEN_MODE: the worker's, as deployed
    return TEMPLATES.TemplateResponse(
        request, template, {"now": time.time(), "said": said, "observing": observing, **context}
    )


@page
async def rooms_page(request: Request) -> Response:
    engine = request.state.engine
    settings = request.state.settings
    state = request.query_params.get("state", "")
    if state and state not in ROOM_STATES:
        state = ""
    window = request.query_params.get("window", "hour")
    if window not in WINDOWS:
        window = "hour"
    found = await list_rooms(engine, limit=PAGE_ROOMS, offset=0, phase=state or None)
    incidents = await open_incidents_by_room(engine, [r.sid for r in found.rooms])
    waits = await time_to_agent_since(engine, time.time() - WINDOWS[window])
    rows = [
        {
            **shown_room(room_summary(room, found.confirmed.get(room.sid))),
            "time_to_agent": time_to_agent(room, room.summary()),
            "incident": incidents.get(room.sid),
        }
        for room in found.rooms
    ]
    sla = settings.warden_join_sla_seconds
    return render(
        request,
        "rooms",
        {
            "rooms": rows,
            "total": found.total,
            "state": state,
            "phases": list(ROOM_STATES),
            "counts": await phase_counts(engine),
            "window": window,
            "histogram": histogram_svg(histogram_bars(waits.seconds, waits.still_waiting, sla)),
            "p50": percentile(waits.seconds, 0.5),
            "p90": percentile(waits.seconds, 0.9),
            "measured": len(waits.seconds),
            "sla": sla,
            "dead_letters": await waiting_count(engine),
            "retention": settings.warden_retention,
        },
    )


@page
async def room_page(request: Request) -> Response:
    found = await find_room(
        request.state.engine, request.path_params["name"], shown=request.state.settings.warden_timeline_shown
    )
    if found is None:
        what = f"room {fit(request.path_params['name'])}"
        return TEMPLATES.TemplateResponse(request, "missing.html", {"what": what}, status_code=404)
    room, timeline = found.room, found.timeline
    incidents = await open_incidents_by_room(request.state.engine, [room.sid])
    now = time.time()
    marks, spans, deadlines = _drawing(timeline, end=room.finished_at or now)
    moments = [m.at for m in marks] + [d.at for d in deadlines]
    start = min(moments, default=now)
    end = max([*moments, room.finished_at or now])
    lines = [
        {
            **(line := timeline_entry(entry)),
            "type": fit(line["type"]),
            "participant": fit(line["participant"] or ""),
            "at": _at(entry),
            "offset": _at(entry) - start,
            "summary": fit(_summary(entry), TEXT_CHARS),
            "would": would(entry.name) if (line.get("detail") or {}).get("carried_out") is False else "",
        }
        for entry in timeline
    ]
    return render(
        request,
        "room",
        {
            "room": {
                **shown_room(
                    room_summary(room, (await confirmations(request.state.engine, [room.sid])).get(room.sid))
                ),
                "time_to_agent": time_to_agent(room, room.summary()),
            },
            "incident": incidents.get(room.sid),
            "timeline": lines,
            "earlier": {fit(kind): n for kind, n in found.earlier.items()},
            "drawing": timeline_svg(marks, spans, deadlines, start, end),
        },
    )


@page
async def incidents_page(request: Request) -> Response:
    found, total = await list_incidents(request.state.engine, limit=100, offset=0)
    incidents = [
        {
            "id": i.id,
            "agent_name": fit(i.agent_name or ""),
            "state": "resolved" if i.resolved_at is not None else "open",
            "reason": fit(i.reason, TEXT_CHARS),
            "opened_at": i.opened_at,
            "resolved_at": i.resolved_at,
            "recovery": None if i.resolved_at is None else i.resolved_at - i.opened_at,
            "rooms": [
                {"name": fit(name), "sid": sid, "recovered": recovered is not None}
                for sid, name, _, recovered in i.rooms
            ],
            "waiting": i.waiting_rooms,
            "kind": i.kind,
            "maintenance": i.maintenance,
            "workers": [fit(worker) for worker, _ in i.workers],
            "acknowledged_at": i.acknowledged_at,
            "acknowledged_by": fit(i.acknowledged_by),
            "actions": [
                {"at": at, "action": action, "outcome": fit(outcome, TEXT_CHARS), "carried_out": done}
                for at, action, outcome, done in i.actions
            ],
        }
        for i in found
    ]
    retention = request.state.settings.warden_retention
    return render(request, "incidents", {"incidents": incidents, "total": total, "retention": retention})


def _at(entry: TimelineEntry) -> float:
    """When it happened on Warden's clock: a fact's own time, else when Warden received or decided it."""
    fact = entry.data.get("fact") or {}
    return float(fact.get("at") or entry.received_at)


def _summary(entry: TimelineEntry) -> str:
    line = timeline_entry(entry)
    detail = line.get("detail") or {}
    parts = [
        f"{k}={v}"
        for k, v in detail.items()
        if v not in (None, "", [], {}) and k not in ("at", "carried_out")
    ]
    if line.get("participant_kind"):
        parts.insert(0, str(line["participant_kind"]).lower())
    return ", ".join(parts)


def _drawing(timeline: list[TimelineEntry], *, end: float) -> tuple[list[Mark], list[Span], list[Deadline]]:
    """The timeline as lanes: dots for entries, presence bands from joins and leaves, SLA deadlines."""
    marks: list[Mark] = []
    deadlines: list[Deadline] = []
    present: dict[str, dict[str, float]] = {"people": {}, "agent": {}}
    spans: list[Span] = []
    for entry in timeline:
        at = _at(entry)
        line = timeline_entry(entry)
        lane = {"action": "action", "warden": "warden"}.get(line["source"], "livekit")
        label = entry.name + (f" {entry.participant}" if entry.participant else "")
        marks.append(Mark(at, lane, shown(label)))  # the chart is Markup: `finalize` never sees it
        if entry.kind == ACTION_KIND and entry.name == "ScheduleDeadline":
            reason = str(entry.data.get("reason", ""))
            deadlines.append(Deadline(float(entry.data["at"]), SLA_NAMES.get(reason, reason)))
        if lane != "livekit" or not entry.participant:
            continue
        who = present["agent" if line.get("participant_kind") == "AGENT" else "people"]
        if entry.name in JOINS:
            who.setdefault(entry.participant, at)
        elif entry.name in LEAVES and entry.participant in who:
            spans.append(Span(who.pop(entry.participant), at, _lane(present, who)))
    for lane, who in present.items():
        spans.extend(Span(since, end, lane) for since in who.values())
    return marks, _merge(spans), deadlines


def _lane(present: dict[str, dict[str, float]], who: dict[str, float]) -> str:
    return "agent" if who is present["agent"] else "people"


def _merge(spans: list[Span]) -> list[Span]:
    """Overlapping stretches of one lane drawn as one band."""
    merged: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.lane, s.start)):
        if merged and merged[-1].lane == s.lane and s.start <= merged[-1].end:
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, s.end), s.lane)
        else:
            merged.append(s)
    return merged
