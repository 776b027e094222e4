"""`python -m service`: the web process (the Procfile's `web:` line), bound to `$PORT`."""

from __future__ import annotations

import uvicorn

from service.app import create_app
from workers import logs
from workers.settings import load_settings_or_exit


def main() -> None:
    settings = load_settings_or_exit()
    logs.configure(settings.warden_log_level, settings.warden_log_format, process="web")
    logs.allow_dev_keys(settings.api_keys)
    uvicorn.run(
        create_app(settings),
        host=settings.warden_host,
        port=settings.port,
        log_level=settings.warden_log_level.lower(),
        # uvicorn's loggers go to ours, not to its own handlers: its lines (a request path may hold a
        # room's name) are masked, clipped and escaped like every other (see `workers.logs`).
        log_config=None,
    )


if __name__ == "__main__":
    main()
