"""What the `liveness` cron keeps between its looks, in each worker (`WorkerContext.looked`): each room's
state as it last read it, by its row's `version` (every write of a room's state takes the next one), so
that a room unchanged since is neither read nor decoded again; and, for a room whose last look found it
as Warden knows it and whose looks' outcome does not depend on when they are taken
(`workers.core.liveness`, rule 5: `steady`), the listing that look compared. The same listing of the
same room, at the same version and under the same rules, is no news again: the state machine is not
asked a second time.

At most `MAX_ROOMS` rooms are kept, the least recently looked at first out (more rooms than that are
read and compared at each look, as without it).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from workers.core.events import Participant
from workers.core.room import Room
from workers.core.rules import Rules

MAX_ROOMS = 5000  # a room's state is a few kilobytes in memory


@dataclass
class Kept:
    """A room as the cron last read it (`version`), and the listing its last look found no news in
    (`quiet`, after `quiet_turns`; None: none yet, or its outcome may depend on the time)."""

    version: int
    room: Room
    quiet: tuple[Participant, ...] | None = None


class Looked:
    """The rooms the cron has read (see the module)."""

    def __init__(self, max_rooms: int = MAX_ROOMS) -> None:
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._max = max_rooms
        self._rules: Rules | None = None

    def get(self, sid: str, version: int, rules: Rules) -> Kept | None:
        """The room as kept, if it was read at `version` under `rules`."""
        if rules is not self._rules:  # what a room expects, and how it is decoded, follow the rules
            self._kept.clear()
            self._rules = rules
        kept = self._kept.get(sid)
        if kept is None or kept.version != version:
            return None
        self._kept.move_to_end(sid)
        return kept

    def keep(self, sid: str, version: int, room: Room) -> Kept:
        """Keep the room as read at `version`: no listing compared yet."""
        kept = self._kept[sid] = Kept(version, room)
        self._kept.move_to_end(sid)
        while len(self._kept) > self._max:
            self._kept.popitem(last=False)
        return kept

    def __len__(self) -> int:
        return len(self._kept)
