"""Personal data Warden must not show: phone numbers. A caller's identity is derived from the number by
default (`sip_+15550100`), SIP rooms are often named after it, and `sip.phoneNumber` attributes carry
it. `mask_phone` keeps at most the last four digits of every number written as LiveKit's SIP writes them:
E.164 with its `+` ("+15550100" → "•••0100", also URL-encoded), or seven digits or more right after
`sip_`. Other runs of
digits (timestamps in event ids, dates) are left alone."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"(?:\+|%2[bB])\d{7,}|(?<=sip_)\d{7,}")  # %2B: a `+` in a URL


def mask_phone(text: str) -> str:
    """`text` with each phone-number-like run replaced by `•••` and its last four digits."""
    if not any(c.isdigit() for c in text):
        return text
    return _NUMBER.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    return "•••" + match[0][-4:]


def mask_identity(identity: str, kind: int | None) -> str:
    """A participant's identity fit to keep: an agent's as it is (Warden evicts agents by identity);
    anyone else's with phone numbers masked. Track events carry no kind: there only the identities
    LiveKit derives from a number (`sip_…`) or that spell one (`+…`) are masked, so that an agent's
    identity, which may hold a long run of digits, is never changed."""
    if kind == AGENT_KIND:
        return identity
    if kind is None and not (identity.startswith("sip_") or "+" in identity):
        return identity
    return mask_phone(identity)


AGENT_KIND = 4  # livekit.ParticipantInfo.Kind.AGENT (see `workers.core.events.ParticipantKind`)
