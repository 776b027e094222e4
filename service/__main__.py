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
    json_logs = {"log_config": None} if settings.warden_log_format == "json" else {}  # uvicorn's go to ours
    uvicorn.run(
        create_app(settings),
        host=settings.warden_host,
        port=settings.port,
        log_level=settings.warden_log_level.lower(),
        **json_logs,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
