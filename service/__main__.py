"""`python -m service`: the web process (the Procfile's `web:` line), bound to `$PORT`."""

from __future__ import annotations

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from service.app import create_app
from workers import logs
from workers.settings import load_settings_or_exit


def main() -> None:
    settings = load_settings_or_exit()
    logs.configure(settings.warden_log_level, settings.warden_log_format, process="web")
    logs.allow_dev_keys(settings.api_keys)
    logs.mask_phone_numbers("uvicorn.access", "uvicorn.error")  # request paths may hold a room's name
    uvicorn.run(
        create_app(settings),
        host=settings.warden_host,
        port=settings.port,
        log_level=settings.warden_log_level.lower(),
        # JSON: uvicorn's own loggers go to ours instead of its text handlers.
        log_config=None if settings.warden_log_format == "json" else LOGGING_CONFIG,
    )


if __name__ == "__main__":
    main()
