"""The issues' targets as `make bench` reports them: each row with this run's figure ("—" when its run
was left out, or when no benchmark measures it yet)."""

from __future__ import annotations

ISSUE_17 = [
    ("reaction p99, 1,000 rooms over 20 s, PostgreSQL, one worker", "≤ 1 s past the SLA", "react_pg"),
    ("the same, SQLite", "≤ 1 s", "react_sqlite"),
    ("reaction p99, 1,000 SLAs in the same second, PostgreSQL, one worker", "≤ 5 s", "burst"),
    ("worker CPU per event recorded, PostgreSQL", "≤ 500 µs", "cpu"),
    ("worker events/s, ratio to its no-op ceiling in the same run", "≥ 0.8x", "ceiling"),
    ("ingest, ratio to bare Starlette (Warden's p99)", "≥ 0.6x, 0 errors", "ingest"),
    ("escalation: breach reaching WARDEN_OUTAGE_ROOMS → RestartAgent, 1,000-room backlog", "≤ 1 s", "esc"),
    ("recovery: deployment running → each room re-dispatched (p50 / p99)", "(measured)", "recovery"),
    ("scale-out, two workers on one PostgreSQL: events/s ratio to one", "≥ 1.7x", "scale_rate"),
    ("scale-out: the same-second burst's p99, two workers against one", "≤ 0.5x", "scale_burst"),
    ("big room (issue 24): ordinary rooms' events applied beside a 5,000-join storm", "≤ 2 s", "big_rooms"),
    ("big room (issue 24): the storm's room settled, one worker", "≤ 30 s", "big_settled"),
]

ISSUE_30 = [
    (
        "deployment running → 1,000 waiting rooms re-dispatched, p99, one worker, PostgreSQL / SQLite",
        "≤ 3 s",
        "recovery_p99",
    ),
    ("1,000 SLAs in the same second → re-dispatch p99, one worker, PostgreSQL", "≤ 3 s", "burst"),
    ("worker CPU per event recorded", "≤ 400 µs", "cpu"),
    (
        "worker CPU per re-dispatched room (from the deployment's return; the same-second burst)",
        "≤ 2 ms",
        "room_cpu",
    ),
    (
        "ingest / bare Starlette (same uvicorn, same run); Warden's p99 against bare's",
        "≥ 0.6x; ≤ 3x",
        "ingest30",
    ),
    ("canaries + liveness reads at 1,000 live rooms", "≤ 5 % of one worker's CPU", "canaries"),
]


def table(rows: list[tuple[str, str, str]], figures: dict[str, str]) -> str:
    lines = ["| target | wanted | this run |", "|---|---|---|"]
    lines += [f"| {what} | {want} | {figures.get(key, '—')} |" for what, want, key in rows]
    return "\n".join(lines)
