"""`python -m service`: the web process (the Procfile's `web:` line), bound to `$PORT`."""

from __future__ import annotations

import contextlib
import gc
import sys

import uvicorn

from service.app import create_app
from service.server import web_config
from workers import logs
from workers.core.errors import SettingsError
from workers.settings import load_settings_or_exit

STARTUP_FAILURE = 3  # what `uvicorn.run` exits with when the server could not start


def freeze_startup_objects() -> None:
    """Leave the objects made at start-up (modules, protobuf's descriptors, SQLAlchemy's metadata:
    hundreds of thousands) out of every later garbage collection. Each full collection walked them all,
    75-90 ms on the benchmark's machine with the process serving nothing meanwhile: the webhook's p99.
    They live as long as the process anyway."""
    gc.collect()
    gc.freeze()


def main() -> None:
    settings = load_settings_or_exit()
    logs.configure(settings.warden_log_level, settings.warden_log_format, process="web")
    logs.allow_dev_keys(settings.api_keys)
    try:
        config = web_config(settings, create_app(settings))
    except SettingsError as exc:
        print(f"warden: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    freeze_startup_objects()
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # as `uvicorn.run`: Ctrl-C is a stop, not an error
        server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
