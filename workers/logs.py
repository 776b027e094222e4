"""Logging for Warden's processes. httpx logs every request URL at INFO, and the alert and deploy-hook
URLs are secrets (Slack's carries its token), so its loggers are held at WARNING."""

from __future__ import annotations

import logging

from workers.core.personal import mask_phone


class MaskPhoneNumbers(logging.Filter):
    """Phone numbers never reach a log line: SIP rooms are often named after the caller's number."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phone(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskPhoneNumbers())
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
