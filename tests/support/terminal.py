"""A terminal a person would use, for tests of what Warden shows there: a private tmux server (its own
socket, so parallel runs never meet) with one window, keys typed into it and its screen read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

COLUMNS, LINES = 140, 50


def need_tmux() -> str:
    """tmux's path; skip when it is missing, except under CI, where it must be there."""
    found = shutil.which("tmux")
    if found:
        return found
    message = "tmux not found (make test installs Debian's tmux package)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Terminal:
    """A shell (bash, no rc files) in a COLUMNS x LINES tmux window, started in `cwd` with `env`."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.tmux = need_tmux()
        self.socket = f"warden-test-{uuid.uuid4().hex[:12]}"
        # The server is started by this first command and keeps its environment for the shell.
        self._tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", str(COLUMNS), "-y", str(LINES),
            "-c", str(cwd), "bash --norc --noprofile",
            env=env,
        )  # fmt: skip

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [self.tmux, "-L", self.socket, *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def type(self, line: str) -> None:
        """Type `line` and press Enter."""
        self._tmux("send-keys", "-t", "main", "-l", line)
        self._tmux("send-keys", "-t", "main", "Enter")

    def press(self, key: str) -> None:
        """Press a key as tmux names it, e.g. 'C-c'."""
        self._tmux("send-keys", "-t", "main", key)

    def screen(self) -> str:
        """What the window shows, with what scrolled off it."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "main")

    def shell_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", "main", "#{pane_pid}").strip())

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], capture_output=True)
