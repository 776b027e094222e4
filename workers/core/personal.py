"""Personal data Warden must not show: phone numbers. A caller's identity is derived from the number by
default (`sip_+15550100`), SIP rooms are often named after it, and `sip.phoneNumber` attributes carry
it. `mask_phone` replaces each number by `•••` and its last four digits. The rule, precisely:

- A *digit run* is seven digits or more, where neighbouring digits may be apart by one separator (`-`,
  `.`, `_`, a space, or `%20` in a URL) and up to five of them may stand in parentheses (`(555)`, or
  `%28555%29`). `1-555-010-0123`, `+1 (555) 010-0123`, `15550100` and `2026-12-07 03` are digit runs;
  `12:34:56`, `1 - 555 - 0100` and `call-42` are not. A run is as long as it goes, so
  `call-2026-12-07-15550100` is one run of sixteen digits.
- A digit run is a phone number when it is written with a `+` (or `%2B`, a `+` in a URL) right before
  it, or when it follows a phone word: `sip`, `tel`, `phone`, `call`, `caller`, `callee`, `pstn`,
  `mobile`, `cell`, `fax` or `dial`, in any case, not glued to a letter or digit before it, perhaps
  followed by `number`, `num`, `no` or `id` (`phoneNumber`, `caller_id`, `phone number`), then up to
  three of `-`, `_`, `.`, `:`, `=`, `#`, `/` or a space (or `%20`, `%3A`) and the run: `sip_15550100`,
  `tel:+1-555-010-0123`, `phone-1-555-010-0123`, `call-15550100-dashed`, `Caller: (555) 010-0123`.
- Except a run after a phone word that is exactly a date (`call-2026-12-07-standup`).
- Everything else is left alone: event and room ids (`EV_1767225605123`, `RM_…`), timestamps and dates
  in free text (`2026-12-07 03:00:00,000`, `1767225605.123`), words that merely begin like a phone word
  (`telemetry 15550100`, `recall-15550100`). A timestamp right after a phone word
  (`call-1767225600`) is masked: nothing tells it from a number there, and a number shown is the worse
  mistake.

A SIP participant's identity is all about the caller, so `mask_identity` masks every digit run in it,
phone word or not (`15550100123`, `1-555-010-0123` → `•••0123`).
"""

from __future__ import annotations

import re
from typing import Any

from workers.core.plain import strings_mapped

_SEP = r"(?:[-. _]|%20)"
_GROUP = r"(?:\(|%28)\d{1,5}(?:\)|%29)"  # an area code in parentheses, as in (555)
_RUN = rf"(?:{_GROUP}|\d)(?:{_SEP}?(?:{_GROUP}|\d)){{3,}}"  # seven digits or more: counted in _masked
_WORD = (
    r"(?<![A-Za-z0-9])(?:sip|tel|phone|caller|callee|call|pstn|mobile|cell|fax|dial)"
    r"(?:[-_ ]?(?:number|num|no|id))?"
)
_GAP = r"(?:[-_.:=#/ ]|%20|%3[aA])"
_NUMBER = re.compile(rf"(?P<word>{_WORD}{_GAP}{{0,3}})?(?P<plus>(?:\+|%2[bB]){_SEP}?)?(?P<run>{_RUN})", re.I)
_DATE = re.compile(r"(?:19|20)\d\d-[01]\d-[0-3]\d")
_NOT_A_DIGIT = re.compile(r"%[0-9A-Fa-f]{2}|\D")  # %20 and friends hold digits that are no part of it
FEWEST_DIGITS = 7
_DIGIT = re.compile(r"\d")


def mask_phone(text: str, *, anywhere: bool = False) -> str:
    """`text` with each phone number (see the module's doc) replaced by `•••` and its last four digits;
    with `anywhere`, every digit run is taken for one (a SIP caller's identity)."""
    if len(_DIGIT.findall(text)) < FEWEST_DIGITS:  # too few digits for any number (a webhook's usual)
        return text
    return _NUMBER.sub(lambda match: _masked(match, anywhere), text)


def _masked(match: re.Match[str], anywhere: bool) -> str:
    word, plus, run = match["word"], match["plus"], match["run"]
    digits = _NOT_A_DIGIT.sub("", run)
    if len(digits) < FEWEST_DIGITS or not (plus or anywhere or (word and not _DATE.fullmatch(run))):
        return match[0]  # no number: as it was (the run is consumed, so no part of it is taken alone)
    return (word or "") + "•••" + digits[-4:]


def mask_within(value: Any) -> Any:
    """`value` (JSON: a job's arguments) with phone numbers masked in every string in it, keys too."""
    return strings_mapped(value, mask_phone, keys=True)


def mask_identity(identity: str, kind: int | None) -> str:
    """A participant's identity fit to keep: an agent's as it is (Warden evicts agents by identity); a
    SIP caller's with every digit run masked; anyone else's with phone numbers masked. Track events
    carry no kind: there phone numbers are masked, which never changes an agent's identity as LiveKit
    makes them (`agent-AJ_…`: no `+`, no phone word before digits)."""
    if kind == AGENT_KIND:
        return identity
    return mask_phone(identity, anywhere=kind == SIP_KIND)


def mask_target(to: str) -> str:
    """A transfer target (`tel:+15550100`, `sip:alice@pbx.example`) fit to show: a number by its last four
    digits, a SIP URI's user part hidden (`sip:•••@pbx.example`)."""
    scheme, colon, rest = to.partition(":")
    if not colon:
        scheme, rest = "", to
    head = f"{scheme}:" if scheme else ""
    _user, at, host = rest.rpartition("@")
    if at:
        return f"{head}•••@{host}"
    digits = _NOT_A_DIGIT.sub("", rest)
    return f"{head}•••{digits[-4:]}" if len(digits) >= 4 else f"{head}•••"


def mask_text(text: str, secret: str) -> str:
    """`text` with `secret` (a transfer target) masked wherever it appears, and phone numbers masked."""
    if secret:
        text = text.replace(secret, mask_target(secret))
    return mask_phone(text)


SIP_KIND = 3  # livekit.ParticipantInfo.Kind.SIP (see `workers.core.events.ParticipantKind`)
AGENT_KIND = 4  # livekit.ParticipantInfo.Kind.AGENT
