"""The recipes in deploy/: each parses, validates against a schema where one is available offline, and
runs exactly the Procfile's commands, with probes on routes the app really serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from service.app import create_app
from tests.support.processes import ROOT, procfile
from tests.support.settings import make_settings

DEPLOY = ROOT / "deploy"
COMMANDS = {name: command.split() for name, command in procfile().items()}


def routes() -> set[str]:
    return {getattr(route, "path", "") for route in create_app(make_settings()).routes}


def manifests(path: Path) -> list[dict[str, object]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_procfile_has_the_three_processes() -> None:
    assert COMMANDS == {
        "web": ["python", "-m", "service"],
        "worker": ["python", "-m", "workers"],
        "release": ["python", "-m", "workers.migrate"],
    }


def test_dockerfile_is_multi_stage_non_root_and_runs_web_by_default() -> None:
    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    stages = [i for i in parser.structure if i["instruction"] == "FROM"]
    assert len(stages) >= 2 and all("slim" in s["value"] for s in stages)
    final = [i for i in parser.structure if i["startline"] > stages[-1]["startline"]]
    user = [i["value"] for i in final if i["instruction"] == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert (
        parser.cmd.startswith("[") and json.loads(parser.cmd) == COMMANDS["web"]
    )  # exec form: signals reach it
    copied = " ".join(i["value"] for i in parser.structure if i["instruction"] == "COPY")
    for needed in ("pyproject.toml", "service", "workers"):
        assert needed in copied
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".env", "var", ".git"} <= set(ignored)


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


@pytest.mark.parametrize("path", sorted((DEPLOY / "kubernetes").glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_manifests_validate_against_the_kubernetes_schema(path: Path) -> None:
    import kubernetes_validate

    for doc in manifests(path):
        if doc["apiVersion"] == "monitoring.coreos.com/v1":  # a CRD: checked structurally below
            continue
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_kubernetes_workloads_run_the_procfile_commands_with_real_probes() -> None:
    docs = [d for p in (DEPLOY / "kubernetes").glob("*.yaml") for d in manifests(p)]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}  # type: ignore[index]
    served = routes()

    def container(kind: str, name: str) -> dict[str, object]:
        return by_name[(kind, name)]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index,no-any-return]

    web = container("Deployment", "warden-web")
    assert web["command"] == COMMANDS["web"]
    assert web["livenessProbe"]["httpGet"]["path"] in served  # type: ignore[index]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz" and "/readyz" in served  # type: ignore[index]
    assert container("Deployment", "warden-worker")["command"] == COMMANDS["worker"]
    assert container("Job", "warden-migrate")["command"] == COMMANDS["release"]
    monitor = by_name[("ServiceMonitor", "warden")]
    endpoint = monitor["spec"]["endpoints"][0]  # type: ignore[index]
    assert endpoint["path"] == "/metrics" and "/metrics" in served
    service = by_name[("Service", "warden-web")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()  # type: ignore[index]


def test_heroku_render_and_fly_run_the_procfile_commands() -> None:
    app = json.loads((DEPLOY / "heroku" / "app.json").read_text())
    assert set(app["formation"]) == {"web", "worker"}
    assert {a["plan"].split(":")[0] for a in app["addons"]} == {"heroku-postgresql", "heroku-redis"}
    render = yaml.safe_load((DEPLOY / "render" / "render.yaml").read_text())
    kinds = {s["type"]: s for s in render["services"]}
    assert kinds["web"]["startCommand"].split() == COMMANDS["web"]
    assert kinds["web"]["preDeployCommand"].split() == COMMANDS["release"]
    assert kinds["web"]["healthCheckPath"] in routes()
    assert kinds["worker"]["startCommand"].split() == COMMANDS["worker"]
    assert "keyvalue" in kinds and render["databases"]
    fly = tomllib.loads((DEPLOY / "fly" / "fly.toml").read_text())
    assert {k: v.split() for k, v in fly["processes"].items()} == {
        "web": COMMANDS["web"],
        "worker": COMMANDS["worker"],
    }
    assert fly["deploy"]["release_command"].split() == COMMANDS["release"]
    assert fly["http_service"]["processes"] == ["web"]
    assert fly["http_service"]["checks"][0]["path"] in routes()
    assert (DEPLOY / "fly" / fly["build"]["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()


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


def test_requirements_file_installs_warden_itself_for_heroku() -> None:
    lines = [
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("#")
    ]
    assert lines == ["."]
    assert tuple(int(p) for p in (ROOT / ".python-version").read_text().split(".")) >= (3, 11)


def test_a_built_wheel_carries_its_migrations_and_runs_the_release_step(tmp_path: Path) -> None:
    """What the Docker image and the PaaS builds do (`pip install .`, not an editable install)."""
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
            str(ROOT),
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
