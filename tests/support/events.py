"""Webhook bodies read into Warden's events, as the webhook endpoint reads them."""

from __future__ import annotations

from service.intake.body import loads_webhook
from workers.core.events import Event, from_webhook_json


def parse(raw: bytes) -> Event:
    """The event a webhook body `raw` carries (its id, when it has none: "none")."""
    return from_webhook_json(loads_webhook(raw), fallback_id="none")
