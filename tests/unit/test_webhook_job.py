"""The event a webhook's job carries (`workers.adapters.webhook.webhook_event`, built as plain data by
the web without the dataclasses) is exactly the plain form of an `Event` (`to_dict`'s: every field, no
other key), which the worker's `from_plain` reads, for every recorded LiveKit body: the worker of the
release before this one reads it too (its `apply_webhook` is the same `from_plain(Event, ...)`), so a
web process upgraded first queues nothing its worker cannot run. Its pickle names no Warden class."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from service.intake.body import loads_webhook
from tests.support.helpers import FIXTURES
from workers.adapters.webhook import webhook_event
from workers.core.events import Event, to_dict
from workers.core.plain import from_plain


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_the_worker_reads_the_event_the_web_reduced(path: Path) -> None:
    reduced = webhook_event(loads_webhook(path.read_bytes()), fallback_id="sha256-fallback")
    carried = pickle.loads(pickle.dumps(reduced))  # as ARQ's job holds it
    event = from_plain(Event, carried)
    expected = {**to_dict(event), "kind": event.kind.value}  # its kind the string the enum stands for
    assert carried == expected  # the plain form of the event the worker reads: no field left out
    assert [type(v) for v in _leaves(carried)] == [type(v) for v in _leaves(expected)]
    assert b"workers" not in pickle.dumps(reduced)  # no reference to a class of Warden's


def _leaves(value: object) -> list[object]:
    """The values of nested dicts, in order (an enum among them would be a type the pickle names)."""
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key])]
    return [value]
