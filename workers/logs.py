"""Logging for Warden's processes (web, worker, release), as text or, with `WARDEN_LOG_FORMAT=json`, one
JSON object per line for a log drain: time, level, process, logger, message, and the room, event and
outcome when the line is about one (passed as `extra={"room": ..., ...}`).

httpx logs every request URL at INFO, and the alert and deploy-hook URLs are secrets (Slack's carries its
token), so its loggers are held at WARNING. Python's warnings are logged too, so that they are JSON as well.
"""

from __future__ import annotations

import json
import logging
import warnings
from datetime import UTC, datetime

import jwt

from workers.core.personal import mask_phone

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("room", "event", "outcome")
# livekit-server --dev's key pair, which `make run` uses when no key is configured.
DEV_KEYS = {"devkey": "secret"}


class MaskPhoneNumbers(logging.Filter):
    """Phone numbers never reach a log line: SIP rooms are often named after the caller's number."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Masked piece by piece, so that formatters that read `args` (uvicorn's access log) still can.
        if isinstance(record.msg, str):
            record.msg = mask_phone(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _masked(v) for k, v in record.args.items()}
        return True


def _masked(value: object) -> object:
    if isinstance(value, int | float) or value is None:
        return value
    text = str(value)
    masked = mask_phone(text)
    return value if masked == text else masked


def mask_phone_numbers(*loggers: str) -> None:
    """Mask phone numbers in what these loggers (say uvicorn's, with handlers of their own) write."""
    for name in loggers:
        logging.getLogger(name).addFilter(MaskPhoneNumbers())


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback goes into `exception`, escaped)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = mask_phone(str(value))
        if record.exc_info:
            entry["exception"] = mask_phone(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str = "text", *, process: str) -> None:
    """Log at `level` to stderr, as `fmt` ('text' or 'json'), naming the `process` in JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(process) if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(MaskPhoneNumbers())
    logging.basicConfig(level=level, handlers=[handler])
    logging.captureWarnings(True)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def allow_dev_keys(keys: dict[str, str]) -> None:
    """PyJWT warns on every token signed or verified with livekit-server --dev's 6-byte secret. When the
    only keys are that well-known pair (`make run`'s demo and dev modes) the warning says nothing new and
    is filtered in this process; with any other key, however short, it is left alone."""
    if keys == DEV_KEYS:
        warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)
