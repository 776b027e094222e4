"""Warden's settings for tests, and an environment without the developer's own.

Importing this module deletes every LIVEKIT_* / WARDEN_* variable (WARDEN_TEST_* excepted), REDIS_URL,
DATABASE_URL and PORT from the process environment, so a developer's own values never reach a test, nor
the Warden processes a test or a benchmark starts (they inherit this environment). tests/conftest.py
imports it, so it runs once per test session, before any test.
"""

from __future__ import annotations

import os

from workers.settings import Settings, load_settings


def _forget_the_developers_environment() -> None:
    for name in list(os.environ):
        ours = name.startswith(("LIVEKIT_", "WARDEN_")) or name in ("REDIS_URL", "DATABASE_URL", "PORT")
        if ours and not name.startswith("WARDEN_TEST_"):
            del os.environ[name]


_forget_the_developers_environment()  # at import: Warden reads the environment only when loading settings

KEY, SECRET = "devkey", "a-test-secret-that-is-long-enough-for-hs256"


def make_settings(**overrides: object) -> Settings:
    """Settings as a test's Warden has them: the test key and secret, no .env, then `overrides`."""
    values: dict[str, object] = {
        "_env_file": None,
        "livekit_api_key": KEY,
        "livekit_api_secret": SECRET,
        "livekit_url": "http://127.0.0.1:7880",
    }
    values.update(overrides)
    return load_settings(**values)
