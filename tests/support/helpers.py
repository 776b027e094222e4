"""Test helpers: fixtures on disk, and webhook signing exactly as livekit-server does it."""

from __future__ import annotations

from pathlib import Path

from devtools.simulator.webhooks import agent, body, caller, person
from service.cli.signing import sign

__all__ = ["FIXTURES", "agent", "body", "caller", "fixture", "person", "sign"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def fixture(name: str) -> bytes:
    """A recorded webhook body, byte for byte."""
    return (FIXTURES / f"{name}.json").read_bytes()
