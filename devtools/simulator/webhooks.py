"""Webhook bodies and signatures exactly as livekit-server makes them (simulator, replay and tests)."""

from __future__ import annotations

import json
from typing import Any

from devtools.simulator.livekit import sid_for


def body(
    event: str, *, id: str, created_at: int, room: str = "call-42", sid: str = "RM_test", **extra: Any
) -> bytes:
    """A compact protojson body like livekit-server's."""
    data: dict[str, Any] = {
        "event": event,
        "room": {"sid": sid, "name": room},
        "id": id,
        "createdAt": str(created_at),
    }
    data.update(extra)
    return json.dumps(data, separators=(",", ":")).encode()


def person(identity: str, sid: str | None = None) -> dict[str, Any]:
    return {"sid": sid or f"PA_{identity}", "identity": identity, "state": "ACTIVE"}


def agent(identity: str, name: str = "notetaker", sid: str | None = None) -> dict[str, Any]:
    return {
        "sid": sid or f"PA_{identity}",
        "identity": identity,
        "state": "ACTIVE",
        "kind": "AGENT",
        "attributes": {"lk.agent_name": name},
    }


def caller(identity: str, number: str, sid: str | None = None) -> dict[str, Any]:
    """A phone caller as livekit-server reports one (kind SIP, the number in its attributes)."""
    return {
        "sid": sid or sid_for("PA_", identity),
        "identity": identity,
        "state": "ACTIVE",
        "kind": "SIP",
        "attributes": {"sip.phoneNumber": number, "sip.callStatus": "active"},
    }


def avatar(identity: str, speaks_for: str, sid: str | None = None) -> dict[str, Any]:
    """An avatar worker: a second AGENT participant publishing on behalf of the agent `speaks_for`."""
    return {
        "sid": sid or f"PA_{identity}",
        "identity": identity,
        "state": "ACTIVE",
        "kind": "AGENT",
        "attributes": {"lk.publish_on_behalf": speaks_for},
    }
