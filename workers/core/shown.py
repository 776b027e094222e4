"""Values Warden was sent (room names, identities, event names, error texts), made fit to show people:
inert and bounded. Used wherever they are written for a person to read: text log lines
(`workers.logs`), the CLI (`service.cli.views`) and the dashboard (`service.dashboard.pages`). The API
returns them as stored: JSON escapes what needs escaping, and a client needs the exact value (to look a
room up by name, say).

`inert(text)` writes every character that could act on a terminal, a log reader or a page's layout as a
visible escape instead: C0 controls (newline `\\n`, carriage return `\\r`, tab `\\t`, the rest `\\x1b`
and so on: ESC starts terminal sequences, BEL ends OSC titles), DEL, C1 controls (`\\x9b` is CSI on some
terminals), the Unicode line and paragraph separators (`\\u2028`, `\\u2029`, which some viewers break
lines at) and the bidirectional controls (`\\u202e` and friends, which reorder the text that follows).
So a room name holding a newline and a forged log line stays one line, and an escape sequence is shown,
never run. A backslash is left as it is: `\\n` may be those two characters or an escaped newline; the
API has the exact value.

`fit(text, limit)` masks phone numbers (`workers.core.personal`) and keeps the first `limit` characters
of a longer value, saying how many were left out: `…(999800 more chars)` (no `+`: a count is no phone
number). It cuts first, so that a 1 MB value costs what its first `limit` characters cost, but never
inside a digit run (it backs off to where the run began), so that no part of a number escapes the mask.
Then `inert`, so that an escape is never cut in two: `shown` does both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from workers.core.personal import mask_phone

NAME_CHARS = 200  # a room name, an identity or an agent name, as shown in the CLI and the dashboard
TEXT_CHARS = 1000  # a longer text (an error, a reason, a value in a log line)
LISTED = 10  # names listed in one line or cell, before "and N more"

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def inert(text: str) -> str:
    """`text` with every control character written as a visible escape (see the module's doc)."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escaped, text)


def inert_lines(text: str) -> str:
    """`inert` line by line: the newlines between lines kept (a traceback stays readable), every other
    control character escaped."""
    return "\n".join(inert(line) for line in text.split("\n"))


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def fit(text: str, limit: int = NAME_CHARS, *, mask: bool = True) -> str:
    """`text` with phone numbers masked (unless not `mask`: an id a person must type back as it is),
    cut to `limit` characters (and how many were left out) when it is longer."""
    masked = mask_phone if mask else str
    if len(text) <= limit:
        return masked(text)
    cut = limit
    if _in_run(text[cut]):  # the cut would split a digit run: cut where it began instead
        while cut > 0 and _in_run(text[cut - 1]):
            cut -= 1
    return f"{masked(text[:cut])}…({len(text) - cut} more chars)"


def shown(text: str, limit: int = NAME_CHARS, *, mask: bool = True) -> str:
    """`text` masked, clipped to `limit` characters and made inert: as a person may be shown it."""
    return inert(fit(text, limit, mask=mask))


def listed(names: Sequence[str], most: int = LISTED, limit: int = NAME_CHARS) -> str:
    """Names (identities, say) joined by commas, each `shown`; past the first `most`, how many more."""
    head = ", ".join(shown(name, limit) for name in names[:most])
    return head if len(names) <= most else f"{head} and {len(names) - most} more"


def _in_run(char: str) -> bool:
    return char in _RUN_CHARS or char.isdigit()


_RUN_CHARS = frozenset("-. _()%+")  # what a digit run (and its `+`) is written with, besides digits
