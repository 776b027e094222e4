"""Webhook bodies read into Warden's events, as the webhook endpoint reads them."""

from __future__ import annotations

import re

from service.intake.body import loads_webhook
from workers.adapters.webhook import from_webhook_json
from workers.core.events import Event


def parse(raw: bytes) -> Event:
    """The event a webhook body `raw` carries (its id, when it has none: "none")."""
    return from_webhook_json(loads_webhook(raw), fallback_id="none")


# LiveKit's event ids (`EV_` and up to 60 of [A-Za-z0-9_-]), written out here rather than taken from
# `workers.core.bounds`, so that a test of the bounds does not take its expectation from the code it tests.
LIVEKITS_ID = re.compile(r"EV_[A-Za-z0-9_-]{1,60}")
