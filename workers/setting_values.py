"""The values settings are written in, parsed: durations, URLs, key pairs. Plain functions raising
`ValueError` with a message fit for the variable's name in front (`workers.settings`)."""

from __future__ import annotations

import re

from pydantic import ValidationError

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

URL_SCHEMES = ("ws://", "wss://", "http://", "https://")  # what a LiveKit or LiveKit Cloud URL may start with


def normalise_database_url(url: str) -> str:
    """Map the URLs people paste (``postgres://``, ``sqlite:///``) to SQLAlchemy async-driver URLs."""
    for prefix in ("postgres://", "postgresql://", "postgresql+asyncpg://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            return "sqlite+aiosqlite:///" + url[len(prefix) :]
    raise ValueError("must start with postgres://, postgresql:// or sqlite:///")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30d``, ``12h``, ``90m`` or ``45s`` (a whole number and one unit)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text.lower())
    if match is None or int(match[1]) == 0:
        raise ValueError("must be a positive whole number with a unit: s, m, h or d (e.g. 30d, 12h)")
    return float(int(match[1]) * _DURATION_UNITS[match[2]])


def check_http_url(url: str) -> None:
    """An http(s) URL with a host; the error never repeats the URL (a webhook URL is a secret)."""
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if not sep or scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in url):
        raise ValueError("must be an http:// or https:// URL with a host")


def parse_keys(text: str) -> dict[str, str]:
    """Parse livekit-server's ``key: secret`` pairs, one per line or separated by commas."""
    keys: dict[str, str] = {}
    for chunk in re.split(r"[\n,]", text):
        chunk = chunk.strip()
        if not chunk:
            continue
        key, sep, secret = chunk.partition(":")
        if not sep or not key.strip() or not secret.strip():
            raise ValueError("each entry must look like 'key: secret'")
        keys[key.strip()] = secret.strip()
    return keys


NOT_A_TRANSFER_TARGET = "must be a tel:+... number or a sip: URI (value not shown: it is personal data)"


def check_transfer_target(to: str) -> None:
    """A `tel:+...` number or a `sip:` URI; the error never repeats the value (it is personal data)."""
    scheme, sep, rest = to.partition(":")
    if (
        not sep
        or scheme.lower() not in ("tel", "sip", "sips")
        or not rest.strip()
        or any(c.isspace() for c in to)
    ):
        raise ValueError(NOT_A_TRANSFER_TARGET)
    if scheme.lower() == "tel" and not re.fullmatch(r"\+?[0-9][0-9().-]{2,}", rest):
        raise ValueError(NOT_A_TRANSFER_TARGET)


def check_every(text: str) -> str:
    """A period such as ``5m`` (``s``, ``m`` or ``h``, from 1 s up to 24 h), normalised."""
    if parse_duration(text) > 86400 or text.strip().lower().endswith("d"):
        raise ValueError("must be a whole number of s, m or h, from 1s up to 24h (e.g. 5m)")
    return text.strip().lower()


def agent_names(text: str) -> str:
    """Agent names separated by commas (none empty), normalised; "" for none."""
    names = [a.strip() for a in text.split(",")]
    if text.strip() and not all(names):
        raise ValueError("must be agent names separated by commas, none empty")
    return ",".join(a for a in names if a)


def describe(exc: ValidationError) -> str:
    """Pydantic's errors as one line, each naming its variable (upper case, as in the environment)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            lines.append(f"{str(error['loc'][0]).upper()}: {message}")
        else:
            lines.append(message)
    return "; ".join(lines)
