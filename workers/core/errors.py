"""Warden's error tree. Every error Warden raises on purpose is one of these::

    WardenError
    ├── SettingsError      a bad environment variable; start-up stops with its message
    ├── InvalidWebhook     signature, key, expiry or body hash wrong       → HTTP 401
    ├── MalformedEvent     signed, but not a LiveKit WebhookEvent          → HTTP 400
    ├── StaleWrite         another job changed the room first              → the job re-reads and retries
    ├── UnstorableEvent    the database cannot store an event's values     → a dead letter at once
    ├── UpstreamError      LiveKit or a hook failed; `retryable` for 5xx and timeouts, not for 4xx
    ├── UnreadableRecord   a stored row or a queued job's argument is not the type it should be
    └── UndeclaredTransition  a state table lacks a (state, input) pair: the import stops

Messages never carry secrets: they name the variable or the check that failed, never the value.
"""


class WardenError(Exception):
    """Base of every error Warden raises deliberately."""


class SettingsError(WardenError):
    """A setting is missing or wrong; the message names the environment variable."""


class InvalidWebhook(WardenError):
    """The webhook's token or body hash did not verify (answered 401)."""


class MalformedEvent(WardenError):
    """The webhook verified but its body is not a usable WebhookEvent (answered 400)."""


class StaleWrite(WardenError):
    """The room row changed between read and write; the caller re-reads and tries again."""


class UnstorableEvent(WardenError):
    """An event whose values the database cannot store (too long for a column, a NUL, a constraint they
    break): the event's fault, not the database's, so no retry fixes it. Its job becomes a dead letter
    at once; the events recorded with it are recorded without it. The message names the event and the
    column, never the value."""


class UnreadableRecord(WardenError):
    """A stored dict (a row, a queued job's argument) does not decode to the type it is read as
    (`workers.core.plain.from_plain`); the message names the field."""


class UndeclaredTransition(WardenError):
    """A state machine's table has no rule for some (state, input) pairs; the message names them."""


class UpstreamError(WardenError):
    """A call to LiveKit or a hook failed."""

    def __init__(self, message: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
