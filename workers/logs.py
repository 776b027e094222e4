"""Logging for Warden's processes (web, worker, release), as text or, with `WARDEN_LOG_FORMAT=json`, one
JSON object per line for a log drain: time, level, process, logger, message, and the room, event and
outcome when the line is about one (passed as `extra={"room": ..., ...}`).

Every line is written by one of the two formatters here, uvicorn's included (the web hands its loggers
to ours), and the formatter is where what a line carries is made safe to read, whoever logged it:
- phone numbers are masked (`workers.core.personal`): SIP rooms are often named after the caller;
- each interpolated value is clipped to `TEXT_CHARS` with a visible `…(N more chars)`, and the message
  to `MESSAGE_CHARS`, so a 1 MB room name neither makes a 1 MB line nor pushes the rest of it away;
- in text, control characters are escaped (`\\n`, `\\x1b`: `workers.core.shown.inert`), so one record
  is one line and a room name holding a newline and a forged line, or a terminal's escape sequence,
  is shown, never obeyed. A traceback stays readable on its own lines, but the lines that carry values
  (each exception's message and notes, where `str(exc)` may quote a room name) are escaped like the
  message, so a traceback never holds a line that the traceback did not write itself. JSON escapes
  C0 controls already; the C1 controls, line separators and bidirectional controls that it leaves raw
  are written as `\\u` escapes too (the same value to a JSON reader).

httpx logs every request URL at INFO, and the alert and deploy-hook URLs are secrets (Slack's carries its
token), so its loggers are held at WARNING. Python's warnings are logged too, so that they are JSON as well.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import jwt

from workers.core.personal import mask_phone
from workers.core.shown import TEXT_CHARS, fit, inert, inert_lines

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("room", "event", "outcome")
MESSAGE_CHARS = 4 * TEXT_CHARS
# livekit-server --dev's key pair, which `make run` uses when no key is configured.
DEV_KEYS = {"devkey": "secret"}
# What json.dumps(ensure_ascii=False) leaves raw and a terminal or a viewer may act on.
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def message(record: logging.LogRecord) -> str:
    """The record's message as `getMessage` makes it, from its values masked and clipped one by one,
    then masked (a number may be split between the format and a value) and clipped as a whole."""
    text = str(record.msg)
    args: Any = record.args
    if isinstance(args, tuple):
        args = tuple(_bounded(a) for a in args)
    elif isinstance(args, Mapping):
        args = {k: _bounded(v) for k, v in args.items()}
    if args:
        text = text % args
    return fit(text, MESSAGE_CHARS)


def _bounded(value: object) -> object:
    # Only strings: numbers must stay numbers for %d, and other objects are bounded with the message.
    return fit(value, TEXT_CHARS) if isinstance(value, str) else value


def exception_text(exc_info: ExcInfo) -> str:
    """A traceback on its lines, each exception's message and notes masked, clipped and escaped."""
    kind, value, tb = exc_info
    if kind is None or value is None:
        return ""
    report = traceback.TracebackException(kind, value, tb)
    for node in _reports(report):
        # Each exception's own lines are where values are quoted: `format` asks each report for them.
        node.format_exception_only = _inert_values(node.format_exception_only)  # type: ignore[method-assign]
    return inert_lines(mask_phone("".join(report.format()).rstrip("\n")))


def _reports(report: traceback.TracebackException) -> Iterator[traceback.TracebackException]:
    """The report and every exception it shows: causes, contexts, an exception group's members."""
    seen: set[int] = set()
    todo = [report]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        todo.extend(n for n in (node.__cause__, node.__context__) if n is not None)
        todo.extend(node.exceptions or ())


def _inert_values(lines: Callable[..., Iterator[str]]) -> Callable[..., Generator[str, None, None]]:
    def format_exception_only(*args: Any, **kwargs: Any) -> Generator[str, None, None]:
        for line in lines(*args, **kwargs):  # "ValueError: <str(exc)>\n", a note, a SyntaxError's parts
            yield inert(fit(line.removesuffix("\n"), TEXT_CHARS)) + "\n"

    return format_exception_only


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, one line per record but for a traceback, which keeps its own lines (see above)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        values = {**record.__dict__, "message": message(record), "asctime": self.formatTime(record)}
        line = inert(TEXT_FORMAT % values)
        if record.exc_info:
            line += "\n" + exception_text(record.exc_info)
        elif record.exc_text:  # formatted by another formatter, without its exc_info
            line += "\n" + inert_lines(mask_phone(record.exc_text))
        if record.stack_info:
            line += "\n" + inert_lines(mask_phone(self.formatStack(record.stack_info)))
        return line


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
            "message": message(record),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = fit(str(value), TEXT_CHARS)
        if record.exc_info:
            entry["exception"] = exception_text(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False)
        return _JSON_RAW.sub(lambda m: f"\\u{ord(m[0]):04x}", line)


def handler(fmt: str = "text", *, process: str) -> logging.Handler:
    """A handler to stderr writing `fmt` ('text' or 'json'), naming the `process` in JSON."""
    written = logging.StreamHandler()
    written.setFormatter(JsonFormatter(process) if fmt == "json" else TextFormatter())
    return written


def configure(level: str, fmt: str = "text", *, process: str) -> None:
    """Log at `level` to stderr, as `fmt` ('text' or 'json'), naming the `process` in JSON."""
    logging.basicConfig(level=level, handlers=[handler(fmt, process=process)])
    logging.captureWarnings(True)
    sys.unraisablehook = log_unraisable
    threading.excepthook = log_thread_error
    sys.excepthook = log_uncaught
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_unraisable(hook: Any) -> None:
    """An exception Python cannot raise (a finaliser's, at shutdown too) as a log line, not as the bare
    text Python writes to stderr by default: a log drain reading JSON lines gets a JSON line."""
    exc = hook.exc_value
    info = (type(exc), exc, hook.exc_traceback) if exc is not None else None
    where = hook.err_msg or "Exception ignored in"
    logging.getLogger("warden.errors").error("%s: %r", where, hook.object, exc_info=info)


def log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """The process's own uncaught exception (ARQ's shutdown cancelling a job in flight raises one out of
    its run loop) as a log line, not Python's bare traceback on stderr (see `log_unraisable`)."""
    logging.getLogger("warden.errors").error(
        "stopped by an uncaught %s", kind.__name__, exc_info=(kind, exc, tb)
    )


def log_thread_error(hook: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception as a log line (see `log_unraisable`)."""
    if hook.exc_type is SystemExit:
        return
    info = (hook.exc_type, hook.exc_value, hook.exc_traceback) if hook.exc_value is not None else None
    name = hook.thread.name if hook.thread is not None else "?"
    logging.getLogger("warden.errors").error("uncaught in thread %s", name, exc_info=info)


def allow_dev_keys(keys: dict[str, str]) -> None:
    """PyJWT warns on every token signed or verified with livekit-server --dev's 6-byte secret. When the
    only keys are that well-known pair (`make run`'s demo and dev modes) the warning says nothing new and
    is filtered in this process; with any other key, however short, it is left alone."""
    if keys == DEV_KEYS:
        warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)
