"""Escalation's own counters, served with the worker's (`workers.jobs.runtime.metrics`): the registry is
process-wide, so defining it here keeps escalation below the jobs that run it."""

from __future__ import annotations

from prometheus_client import Counter

RESTARTS = Counter(
    "warden_restarts_total",
    "Agent restarts (Cloud API or deploy hook), by means, outcome and agent",
    ["via", "outcome", "agent"],
)
CAPACITY_REFUSALS = Counter(
    "warden_capacity_refusals_total",
    "Rooms whose job LiveKit refused for want of capacity (JSR_NO_CAPACITY), by agent",
    ["agent"],
)
DECISIONS = Counter(
    "warden_decisions_total",
    "Decisions Warden made, by action (a room's: Redispatch, Evict, CheckPresence, ...; an incident's: "
    "Restart, Rollback, Alert) and mode (act: carried out; observe: recorded, changes carried out none)",
    ["action", "mode"],
)
