"""Headless Chromium (Debian's /usr/bin/chromium, installed by `make test`) driven by Playwright."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path(os.environ.get("WARDEN_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
# Where the browser tests save what they saw: under var/ (ignored by git), so that a test run changes no
# tracked file. `make screenshots` copies them over the README's, in docs/screenshots.
SCREENSHOTS = ROOT / "var" / "screenshots"
# Flags for a closed network (no background calls home) and for running as root in a container.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need_chromium() -> None:
    """Skip with a reason when Chromium is missing, except under CI, where it must be there."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not found (make test installs Debian's chromium package)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    need_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()
