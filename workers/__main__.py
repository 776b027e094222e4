"""`python -m workers`: start the ARQ worker (the Procfile's `worker:` line)."""

from __future__ import annotations

from arq.worker import Worker

from workers import logs
from workers.main import worker_settings
from workers.settings import load_settings_or_exit


def main() -> None:
    settings = load_settings_or_exit(worker=True)
    logs.configure(settings.warden_log_level)
    Worker(**worker_settings(settings)).run()


if __name__ == "__main__":
    main()
