"""Logging for Warden's processes. httpx logs every request URL at INFO, and the alert and deploy-hook
URLs are secrets (Slack's carries its token), so its loggers are held at WARNING."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
