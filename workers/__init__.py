"""Warden's worker side: the room state machine, its persistence, and the ARQ jobs that drive it."""
