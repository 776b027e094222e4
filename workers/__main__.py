"""`python -m workers`: start the ARQ worker (the Procfile's `worker:` line)."""

from __future__ import annotations

import logging
import sys

from arq.worker import Worker

from workers.errors import SettingsError
from workers.main import worker_settings
from workers.settings import load_settings


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit(f"warden: configuration error: {exc}")
    logging.basicConfig(level=settings.warden_log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Worker(**worker_settings(settings)).run()


if __name__ == "__main__":
    main()
