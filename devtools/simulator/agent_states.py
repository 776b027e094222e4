"""An agent's own state in the stand-in LiveKit: the participant attribute `lk.agent.state` that agents on
livekit-agents publish (`livekit.agents.types.ATTRIBUTE_AGENT_STATE`; `initializing`, `idle`,
`listening`, `thinking`, `speaking`). livekit-agents sets it with `set_attributes` once the agent is
connected (so `participant_joined` does not carry it) and on every change; no webhook reports an
attribute's change: only `ListParticipants` shows it.

A state sequence is `(seconds after the agent connected, state)` pairs, played in order; a worker gives
its jobs' agents one each (`dispatch.Worker.states`), per job in turn, the last repeated.
"""

from __future__ import annotations

AGENT_STATE = "lk.agent.state"
States = tuple[tuple[float, str], ...]

SILENT: States = ()  # publishes no state (an agent not built on the framework)
HEALTHY: States = ((0.0, "initializing"), (0.5, "listening"))  # starts, then listens
STUCK_INITIALIZING: States = ((0.0, "initializing"),)  # never finishes starting (a hung prewarm)
# greets, then hangs on an answer (livekit/agents#3637: until its process is killed)
STUCK_THINKING: States = ((0.0, "initializing"), (0.5, "listening"), (2.0, "speaking"), (4.0, "thinking"))
