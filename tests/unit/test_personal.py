"""Phone numbers masked by `workers.core.personal`'s rule, both ways: every way a number is written in a
SIP identity, a room name or free text is masked; ids, timestamps and dates are left as they are."""

from __future__ import annotations

import pytest

from workers.core.events import ParticipantKind
from workers.core.personal import mask_identity, mask_phone

MASKED = [
    ("+15550100", "•••0100"),  # E.164, as LiveKit's SIP writes it
    ("sip_+15550100", "sip_•••0100"),  # a caller's default identity
    ("sip_15550100", "sip_•••0100"),
    ("%2B15550100", "•••0100"),  # a `+` in a URL (uvicorn's access log)
    ("/rooms/%2B1%20%28555%29%20010-0123", "/rooms/•••0123"),
    ("/api/rooms/call%2015550100", "/api/rooms/call%20•••0100"),
    ("phone-1-555-010-0123", "phone-•••0123"),  # issue 24: with separators, after a phone word
    ("call-15550100-dashed", "call-•••0100-dashed"),
    ("phone_1_555_010_0123", "phone_•••0123"),
    ("+1 (555) 010-0123", "•••0123"),
    ("+1.555.010.0123", "•••0123"),
    ("+44 20 7946 0958", "•••0958"),
    ("+1 555 0100", "•••0100"),
    ("tel:+1-555-010-0123", "tel:•••0123"),
    ("SIP:15550100", "SIP:•••0100"),
    ("Phone: (555) 010-0123", "Phone: •••0123"),
    ("phone (555) 0100", "phone •••0100"),
    ("phone number: 15550100", "phone number: •••0100"),
    ("sip.phoneNumber=5550100123", "sip.phoneNumber=•••0123"),
    ("caller_id 555-0100-123", "caller_id •••0123"),
    ("caller 555 010 0123 hung up", "caller •••0123 hung up"),
    ("callNo15550100", "callNo•••0100"),
    ("call-_+15550100123_x1", "call-_•••0123_x1"),  # a SIP dispatch rule's room
    ("call-2026-12-07-15550100", "call-•••0100"),  # a date glued to a number is one run: all masked
    ("call-1767225600", "call-•••5600"),  # after a phone word, a timestamp is masked too (see the rule)
    ("room call-15550100 (2 callers)", "room call-•••0100 (2 callers)"),  # "(2" is no area code
    ("+15550100 and +15550199", "•••0100 and •••0199"),
]

LEFT_ALONE = [
    "EV_1767225605123",  # an event id with a timestamp in it
    "room-1767225600000",
    "2026-12-07 03:00:00,000 ERROR warden.worker: applied",  # a log line's own time
    "1767225605.123",
    "call-42",  # too few digits
    "call-1234",
    "call 1 - 555 - 0100",  # spaced dashes: no run
    "+12 345",
    "call-2026-12-07-standup",  # a date after a phone word
    "RM_x7Qk2mP9aZbC",
    "deadline:RM_call-1:3",
    "agent-AJ_1234567890",  # an agent's identity: no phone word before its digits
    "recall-15550100",  # words that merely begin like a phone word
    "telemetry 15550100",
    "dialog 15550100",
    "user-123",
    "",
]


@pytest.mark.parametrize(("text", "masked"), MASKED)
def test_numbers_written_any_way_are_masked(text: str, masked: str) -> None:
    assert mask_phone(text) == masked
    assert mask_phone(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_ids_timestamps_and_dates_are_left_alone(text: str) -> None:
    assert mask_phone(text) == text


@pytest.mark.parametrize(
    ("identity", "kind", "kept"),
    [
        ("15550100123", ParticipantKind.SIP, "•••0123"),  # a caller's: any digit run is the number
        ("1-555-010-0123", ParticipantKind.SIP, "•••0123"),
        ("phone-1-555-010-0123", ParticipantKind.SIP, "phone-•••0123"),
        ("trunk_5550100123_x", ParticipantKind.SIP, "trunk_•••0123_x"),
        ("phone-1-555-010-0123", ParticipantKind.STANDARD, "phone-•••0123"),
        ("user-1767225600", ParticipantKind.STANDARD, "user-1767225600"),
        ("sip_15550100", None, "sip_•••0100"),  # a track event's: no kind
        ("phone-1-555-010-0123", None, "phone-•••0123"),
        ("agent-AJ_1234567890", None, "agent-AJ_1234567890"),
        ("call-agent-15550100", ParticipantKind.AGENT, "call-agent-15550100"),  # an agent's: never
    ],
)
def test_identities_are_masked_by_their_kind(identity: str, kind: int | None, kept: str) -> None:
    assert mask_identity(identity, kind) == kept
