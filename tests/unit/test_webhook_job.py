"""The event a webhook's job carries (`service.intake.webhook.job_event`) is read back by the worker's
`from_plain` as the event the web reduced, for every recorded LiveKit body: the worker of the release
before this one reads it too (its `apply_webhook` is the same `from_plain(Event, ...)`), so a web
process upgraded first queues nothing its worker cannot run. Its pickle names no Warden class."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from service.intake.body import loads_webhook
from service.intake.webhook import job_event
from tests.support.helpers import FIXTURES
from workers.adapters.webhook import from_webhook_json
from workers.core.events import Event, to_dict
from workers.core.plain import from_plain


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_the_worker_reads_the_event_the_web_reduced(path: Path) -> None:
    event = from_webhook_json(loads_webhook(path.read_bytes()), fallback_id="sha256-fallback")
    carried = pickle.loads(pickle.dumps(job_event(event)))  # as ARQ's job holds it
    assert from_plain(Event, carried) == event
    assert carried == to_dict(event)  # the same dict as before: the kind a string equal to its enum
    assert b"workers" not in pickle.dumps(job_event(event))  # no reference to a class of Warden's
