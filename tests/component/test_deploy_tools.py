"""The recipes in deploy/ checked by the tools that run them or know their schema, each a process of its
own: the compose file by check-jsonschema's compose-spec schema, the systemd units by `systemd-analyze
verify`, and the wheel `pip` builds (as the Docker image and the PaaS builds do) running the release step.
(The recipes' pure checks: tests/unit/test_deploy.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.processes import ROOT, procfile

DEPLOY = ROOT / "deploy"
COMMANDS = {name: command.split() for name, command in procfile().items()}
# What a checkout holds that a clone does not: the venv, run data, build output and caches.
NOT_SOURCES = (".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


def test_compose_file_is_valid_compose_spec_and_wires_the_processes() -> None:
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for process in ("web", "worker", "release"):
        assert services[process]["command"] == COMMANDS[process]
    for process in ("web", "worker"):
        assert services[process]["depends_on"]["release"] == {"condition": "service_completed_successfully"}
    assert "--appendonly" in services["redis"]["command"]  # nothing answered 200 may vanish with Redis


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the units, their ExecStart pointed at this Python (the unit files
    name /opt/warden/.venv, which does not exist on a test machine)."""
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = re.sub(r"/opt/warden/\.venv/bin/python", sys.executable, unit.read_text())
        text = text.replace("User=warden", "User=root").replace("Group=warden", "Group=root")
        text = re.sub(r"EnvironmentFile=.*", f"EnvironmentFile=-{tmp_path}/warden.env", text)
        (tmp_path / unit.name).write_text(text)
        command = text.split("ExecStart=", 1)[1].split("\n", 1)[0].split()[1:]
        process = {
            "warden-web.service": "web",
            "warden-worker.service": "worker",
            "warden-migrate.service": "release",
        }
        assert command == COMMANDS[process[unit.name]][1:]  # the venv's python, then the Procfile's arguments
    verified = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
    )
    problems = [line for line in verified.stderr.splitlines() if "warden" in line]
    assert verified.returncode == 0 and problems == [], verified.stderr


def test_a_built_wheel_carries_its_migrations_and_runs_the_release_step(tmp_path: Path) -> None:
    """What the Docker image and the PaaS builds do (`pip install .`, not an editable install). Built from
    a copy of the checkout as a clone has it: setuptools builds in the source tree, where it would leave a
    build/ directory whose stale modules (since moved or deleted) later builds there would ship."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("warden-*.whl"))
    shutil.unpack_archive(wheel, tmp_path / "site", format="zip")
    shipped = {p.name for p in (tmp_path / "site").iterdir()}
    assert {"service", "workers"} <= shipped and not shipped & {"devtools", "tests"}, shipped
    env = {
        "PYTHONPATH": str(tmp_path / "site"),
        "PATH": "/usr/bin:/bin",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": "a-secret-long-enough-for-hs256-signing-xx",
        "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
    }
    released = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, workers; print(workers.__file__); "
            "runpy.run_module('workers.migrate', run_name='__main__')",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert released.returncode == 0, released.stderr
    assert released.stdout.splitlines() == [
        str(tmp_path / "site" / "workers" / "__init__.py"),
        "warden: database is at the newest schema",
    ]
