"""Webhook bodies read into Warden's events, as the webhook endpoint reads them."""

from __future__ import annotations

from service.intake.body import loads_webhook
from workers.adapters.webhook import from_webhook_json
from workers.core.events import Event


def parse(raw: bytes) -> Event:
    """The event a webhook body `raw` carries (its id, when it has none: "none")."""
    return from_webhook_json(loads_webhook(raw), fallback_id="none")
