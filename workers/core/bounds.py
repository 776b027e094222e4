"""How long a value Warden keeps from a webhook may be, and what becomes of a longer one.

Warden keeps few of a webhook's values (`workers.core.events`): ids, the room's name, identities, agent
names, an agent job's error and the event's name. Each has a bound here, and each bound is no wider than
the database column that holds the value (`tests/unit/test_bounds.py` checks them against the tables),
so what passes is stored alike on SQLite (which takes any length) and PostgreSQL (which refuses a longer
value, and a NUL in any text). The web applies them to every webhook (`workers.adapters.webhook`) and
heartbeat before anything is queued.

- **Exact values are refused whole** (the webhook is answered 400) when over their bound or holding a
  NUL: the room's name and sid, identities, agent names, the ids of participants, tracks, jobs and
  dispatches. Warden hands them back to LiveKit (ListParticipants, CreateDispatch and RemoveParticipant
  name the room and the agent), compares them with what LiveKit lists, and keys rooms and people by
  them. Clipped, a room's name would name another room, which CreateDispatch would even create, and two
  identities cut to one prefix would be one person. The bounds are LiveKit's own default limits where it
  has them (`limit.max_room_name_length` and `max_participant_identity_length`: 256, in bytes, so no
  name that LiveKit accepts is over them): a longer one comes from a LiveKit whose limits were raised, or
  from whoever holds the webhook key.
- **Free text Warden only shows** (an agent job's error, the name of an event Warden does not know) is
  clipped, with a marker saying by how much: `…(1048000 more chars)`.
- **Event ids are keys and nothing else**: one in LiveKit's form (`EV_` and up to 60 letters, digits,
  `_` or `-`) is kept as it is; any other is replaced by its hash (`sha256-id-` and 32 hex digits), not
  refused. LiveKit takes any 4xx as final, so refusing would drop for good every event of a LiveKit
  whose ids one day take another form; a hash keeps them, and a redelivery hashes to the same id. No
  hash is in LiveKit's form, nor is any id Warden makes (`deadline_passed:…`, `EV_…#0`): no webhook
  can take one of theirs.
- Metadata, participants' names and the attributes other than the agent's name and
  `lk.publish_on_behalf` are dropped by the reduction: never queued, never stored, so nothing bounds
  them but the body's limit (`WARDEN_MAX_BODY_BYTES`), and no event is refused for them.
"""

from __future__ import annotations

import hashlib
import re

ROOM_NAME = 256  # LiveKit's default `limit.max_room_name_length`; rooms.name
IDENTITY = 256  # LiveKit's default `limit.max_participant_identity_length`; events.participant_identity
AGENT_NAME = 128  # room_agents.agent, incidents.agent_name (LiveKit: only its attributes' 64 KB)
SID = 64  # rooms.sid; LiveKit's are a prefix and 12 (before: 22) characters
EVENT_NAME = 64  # events.name
TEXT = 1024  # an agent job's error (kept in the event's JSON only)

EVENT_ID = re.compile(r"EV_[A-Za-z0-9_-]{1,60}")
HASHED = "sha256-id-"


def problem(value: str, limit: int) -> str | None:
    """Why `value` cannot be kept as it is (over `limit` characters, or holding a NUL), or None."""
    if len(value) > limit:
        return f"{len(value)} characters, over {limit}"
    if "\x00" in value:
        return "holding a NUL character"
    return None


def clip(text: str, limit: int) -> str:
    """Free text cut to at most `limit` characters, ending with how many were left out; NULs replaced."""
    text = text.replace("\x00", "\ufffd")
    if len(text) <= limit:
        return text
    kept = limit - len(f"…({len(text)} more chars)")  # the marker can only be shorter than this one
    return f"{text[:kept]}…({len(text) - kept} more chars)"


def event_id(raw: str, fallback: str) -> str:
    """The id Warden keys an event by: LiveKit's `raw` id when it has LiveKit's form, `fallback` when
    there is none, else `raw`'s hash (see the module's doc)."""
    if not raw:
        return fallback
    if EVENT_ID.fullmatch(raw):
        return raw
    return HASHED + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]
