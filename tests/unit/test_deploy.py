"""The recipes in deploy/: each parses, validates against a schema where one is available offline, and
runs exactly the Procfile's commands, with probes on routes the app really serves. (What takes a tool of
its own, check-jsonschema, systemd-analyze or a wheel build: tests/component/test_deploy_tools.py.)"""

from __future__ import annotations

import json
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


def test_requirements_file_installs_warden_itself_for_heroku() -> None:
    lines = [
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("#")
    ]
    assert lines == ["."]
    assert tuple(int(p) for p in (ROOT / ".python-version").read_text().split(".")) >= (3, 11)
