"""terraform/: formatting, validity, and real applies, end to end, no Docker.

Offline: Terraform takes the AWS provider from a local filesystem mirror through a CLI
config file written to a temporary directory; the configuration is copied to temporary
directories too, so nothing (state, lock file, .terraform/) is written into the repo.

- Zip (what LocalStack and AWS run): applied against MiniStack running on CPython 3.12,
  with the real zip from bin/build_lambdas.sh. Both functions then run through the Lambda
  API from the uploaded zip (score 65.29%), the API serves in LocalStack mode with
  ``LMF_INVOKER=lambda`` against it (a run, a prediction), a second plan is clean, destroy.
- Image (real AWS via ECR, LocalStack Pro): applied against a moto server (nothing here
  can run an image; the function's configuration is what is checked).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_ml_flow import notifications
from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.embedded import EmbeddedEmulator
from tests.api.conftest import ApiServer
from tests.conftest import FULL, free_port

from .conftest import ROOT, TERRAFORM_DIR, TF_AWS_PROVIDER, TF_PLUGIN_MIRROR, LambdaZip, missing
from .test_packaging import handlers_in_terraform

DATA_BUCKET = "local-ml-flow-data"
MODELS_BUCKET = "local-ml-flow-models"
ARTIFACTS_BUCKET = "local-ml-flow-artifacts"
ROLE = "local-ml-flow-lambda"
FUNCTIONS = {"ingestion": "local-ml-flow-ingestion", "inference": "local-ml-flow-inference"}
FUNCTION_ENV_KEYS = {"LMF_DATA_BUCKET", "LMF_MODELS_BUCKET", "LMF_DATASET_KEY"}
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/local-ml-flow-lambda:test"
ALLOWED_ACTIONS = {
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}

# GitHub Actions has no offline mirror but reaches the registry: LMF_TF_ONLINE=1 lets
# terraform init download the provider there (the workflow sets it).
TF_ONLINE = os.environ.get("LMF_TF_ONLINE") == "1"

CLI_CONFIG = f"""
provider_installation {{
  filesystem_mirror {{
    path    = "{TF_PLUGIN_MIRROR}"
    include = ["registry.terraform.io/hashicorp/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/*/*"]
  }}
}}
"""


@dataclass
class Terraform:
    """terraform, run offline in a private copy of terraform/."""

    binary: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, f"-chdir={self.workdir}", *args, "-no-color"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, f"terraform {args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc


@pytest.fixture(scope="module")
def terraform_bin() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        missing("terraform not found on PATH (Terraform >= 1.5 is needed)")
        raise AssertionError("unreachable")
    if not TF_ONLINE and not list(TF_AWS_PROVIDER.glob("5.*/linux_amd64/terraform-provider-aws_*")):
        missing(f"hashicorp/aws 5.x provider not in the offline mirror {TF_AWS_PROVIDER}")
    return binary


def make_terraform(binary: str, tmp: Path) -> Terraform:
    """A private copy of the configuration and an offline environment for it."""
    workdir = tmp / "terraform"
    workdir.mkdir(parents=True)
    for pattern in ("*.tf", "*.tfvars"):
        for path in TERRAFORM_DIR.glob(pattern):
            shutil.copy2(path, workdir / path.name)
    cli_config = tmp / "terraform.rc"
    cli_config.write_text(CLI_CONFIG)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TF_", "AWS_PROFILE", "AWS_ENDPOINT_URL"))
    }
    if TF_ONLINE:
        cli_config.write_text("")
        if cache := os.environ.get("TF_PLUGIN_CACHE_DIR"):
            env["TF_PLUGIN_CACHE_DIR"] = cache
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_DATA_DIR": str(tmp / "tf-data"),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "HOME": str(tmp),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    return Terraform(binary=binary, workdir=workdir, env=env)


# ---------------------------------------------------------------- static ---------------


def test_fmt_check(terraform_bin: str, tmp_path: Path) -> None:
    tf = make_terraform(terraform_bin, tmp_path)
    proc = subprocess.run(
        [terraform_bin, "fmt", "-check", "-diff", "-recursive", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        env=tf.env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the example is not a *.tfvars file, so fmt skips it: check a copy
    shutil.copy(TERRAFORM_DIR / "aws.tfvars.example", tf.workdir / "aws.tfvars")
    assert tf.run("fmt", "-check", "-diff").returncode == 0


def test_validate(terraform_bin: str, tmp_path: Path) -> None:
    tf = make_terraform(terraform_bin, tmp_path)
    tf.ok("init", "-backend=false", "-input=false")
    assert "Success" in tf.ok("validate").stdout
    assert not list(TERRAFORM_DIR.glob(".terraform*")), "terraform wrote into the repo"


def declared_variables() -> set[str]:
    text = "\n".join(p.read_text() for p in TERRAFORM_DIR.glob("*.tf"))
    return set(re.findall(r'^variable "(\w+)"', text, flags=re.MULTILINE))


@pytest.mark.parametrize("name", ["localstack.tfvars", "aws.tfvars.example"])
def test_var_files_set_only_declared_variables(name: str) -> None:
    text = (TERRAFORM_DIR / name).read_text()
    assigned = set(re.findall(r"^(\w+)\s*=", text, flags=re.MULTILINE))
    assert assigned
    assert assigned <= declared_variables()
    if name == "aws.tfvars.example":
        assert "endpoint_url" not in assigned
        assert "access_key" not in assigned


def test_versions_pin_terraform_and_the_aws_provider() -> None:
    text = (TERRAFORM_DIR / "versions.tf").read_text()
    assert re.search(r'required_version\s*=\s*">= 1\.5(\.0)?"', text)
    assert re.search(r'source\s*=\s*"hashicorp/aws"', text)
    assert re.search(r'version\s*=\s*"~> 5\.\d+"', text)


def test_no_function_ever_gets_an_endpoint() -> None:
    main = (TERRAFORM_DIR / "main.tf").read_text()
    block = main[main.index('resource "aws_lambda_function"') :]
    assert "endpoint" not in re.sub(r"#.*", "", block).lower()


def handler_problem(handler: str) -> str | None:
    """Why `handler` does not name a callable (event, context) in src/, or None."""
    check = (
        "import importlib, inspect, sys\n"
        "module, _, name = sys.argv[1].rpartition('.')\n"
        "fn = getattr(importlib.import_module(module), name, None)\n"
        "assert callable(fn), 'not callable: ' + repr(fn)\n"
        "inspect.signature(fn).bind({}, None)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", check, handler], capture_output=True, text=True, env=env
    )
    return None if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]


def test_every_handler_and_image_command_names_an_existing_callable() -> None:
    handlers = set(handlers_in_terraform().values())
    dockerfile = (ROOT / "lambdas" / "Dockerfile").read_text()
    cmd = json.loads(re.findall(r"^CMD (.*)$", dockerfile, flags=re.MULTILINE)[-1])
    assert handlers == {
        "local_ml_flow.handlers.ingestion_handler",
        "local_ml_flow.handlers.inference_handler",
    }
    for handler in handlers | set(cmd):
        assert handler_problem(handler) is None, handler_problem(handler)
    assert handler_problem("local_ml_flow.handlers.no_such_handler") is not None


# ---------------------------------------------------------------- apply + destroy ------


def clients(endpoint_url: str) -> dict[str, Any]:
    session = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    invoke_config = Config(read_timeout=900, retries={"max_attempts": 1})
    return {
        "s3": session.client("s3", endpoint_url=endpoint_url),
        "iam": session.client("iam", endpoint_url=endpoint_url),
        "lambda": session.client("lambda", endpoint_url=endpoint_url, config=invoke_config),
    }


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True


def statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    result = document["Statement"]
    return [result] if isinstance(result, dict) else list(result)


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@contextmanager
def applied(
    terraform_bin: str, tmp_path: Path, variables: list[str], package_type: str
) -> Iterator[Terraform]:
    """terraform apply; destroyed afterwards whatever happens (the destroy must succeed)."""
    tf = make_terraform(terraform_bin, tmp_path)
    tf.ok("init", "-input=false")
    started = time.monotonic()
    try:
        tf.ok("apply", "-auto-approve", "-input=false", *variables)
        print(f"\n[terraform apply, {package_type}] {time.monotonic() - started:.1f} s")
        yield tf
    finally:
        started = time.monotonic()
        destroyed = tf.run("destroy", "-auto-approve", "-input=false", *variables)
        print(f"[terraform destroy, {package_type}] {time.monotonic() - started:.1f} s")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr


def check_deployment(
    tf: Terraform, aws: dict[str, Any], dataset_path: Path, package_type: str, zip_path: Path | None
) -> None:
    """Buckets, role and functions are what terraform/ declares."""
    s3, iam, lam = aws["s3"], aws["iam"], aws["lambda"]
    handlers = handlers_in_terraform()

    # buckets: private, data versioned, dataset uploaded
    buckets = [DATA_BUCKET, MODELS_BUCKET] + ([ARTIFACTS_BUCKET] if package_type == "Zip" else [])
    for bucket in buckets:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert len(block) == 4, (bucket, block)
        assert all(block.values()), (bucket, block)
    assert bucket_exists(s3, ARTIFACTS_BUCKET) == (package_type == "Zip")
    assert s3.get_bucket_versioning(Bucket=DATA_BUCKET)["Status"] == "Enabled"
    dataset = s3.get_object(Bucket=DATA_BUCKET, Key="housing.csv")["Body"].read()
    assert dataset == dataset_path.read_bytes()

    # role: assumable by Lambda only, one inline policy on the two buckets and the logs
    role = iam.get_role(RoleName=ROLE)["Role"]
    (trust,) = statements(role["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    (policy_name,) = iam.list_role_policies(RoleName=ROLE)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=ROLE, PolicyName=policy_name)["PolicyDocument"]
    for statement in statements(policy):
        assert statement["Effect"] == "Allow"
        assert set(as_list(statement["Action"])) <= ALLOWED_ACTIONS
        for resource in as_list(statement["Resource"]):
            assert "*" not in resource.rstrip("*").replace(":*", "").replace("/*", "")
            assert resource.startswith(
                (f"arn:aws:s3:::{DATA_BUCKET}", f"arn:aws:s3:::{MODELS_BUCKET}", "arn:aws:logs:")
            ), resource
            if resource.startswith("arn:aws:logs:"):
                assert ":log-group:/aws/lambda/local-ml-flow-" in resource

    # functions: handler or command, explicit timeout and memory, no endpoint
    outputs = json.loads(tf.ok("output", "-json").stdout)
    for key, name in FUNCTIONS.items():
        function = lam.get_function(FunctionName=name)
        config = function["Configuration"]
        assert config["Role"] == role["Arn"]
        assert config["Timeout"] >= 300
        assert config["MemorySize"] >= 512
        assert config["PackageType"] == package_type
        assert set(config["Environment"]["Variables"]) == FUNCTION_ENV_KEYS
        assert config["Environment"]["Variables"]["LMF_DATA_BUCKET"] == DATA_BUCKET
        assert config["Environment"]["Variables"]["LMF_MODELS_BUCKET"] == MODELS_BUCKET
        if package_type == "Zip":
            assert zip_path is not None
            assert config["Runtime"] == "python3.12"
            assert config["Handler"] == handlers[key]
            sha = base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
            assert config["CodeSha256"] == sha
        else:
            assert config["ImageConfigResponse"]["ImageConfig"]["Command"] == [handlers[key]]
            assert function["Code"]["ImageUri"] == IMAGE_URI
        assert handler_problem(handlers[key]) is None
        assert outputs[f"{key}_function_name"]["value"] == name
        assert outputs[f"{key}_function_arn"]["value"] == config["FunctionArn"]
    assert outputs["data_bucket"]["value"] == DATA_BUCKET
    assert outputs["models_bucket"]["value"] == MODELS_BUCKET


def check_retrain_on_upload_declared(tf: Terraform, aws: dict[str, Any]) -> None:
    """The data bucket notifies the ingestion function of uploads (the filters the stack's
    embedded mode uses), which S3 of this account may invoke."""
    lam = aws["lambda"]
    ingestion = lam.get_function(FunctionName=FUNCTIONS["ingestion"])["Configuration"]
    found = aws["s3"].get_bucket_notification_configuration(Bucket=DATA_BUCKET)
    wanted = notifications.configuration(ingestion["FunctionArn"], "housing.csv")
    assert comparable_notifications(found) == comparable_notifications(wanted)
    policy = json.loads(lam.get_policy(FunctionName=FUNCTIONS["ingestion"])["Policy"])
    (allowed,) = [
        st for st in statements(policy) if st["Principal"] == {"Service": "s3.amazonaws.com"}
    ]
    assert allowed["Action"] == "lambda:InvokeFunction"
    assert f"arn:aws:s3:::{DATA_BUCKET}" in json.dumps(allowed["Condition"])
    outputs = json.loads(tf.ok("output", "-json").stdout)
    assert outputs["retrain_on_upload"]["value"] is True


def check_an_upload_is_a_run(aws: dict[str, Any], dataset_path: Path) -> None:
    s3 = aws["s3"]
    before = set(object_keys(s3, DATA_BUCKET))
    pointer = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key="runs/latest.json")["Body"].read())
    header, *rows = dataset_path.read_bytes().strip().split(b"\n")
    reversed_rows = b"\n".join([header, *reversed(rows)]) + b"\n"  # another valid version
    s3.put_object(Bucket=DATA_BUCKET, Key="housing.csv", Body=reversed_rows)
    started = time.monotonic()
    while time.monotonic() - started < 300:
        now = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key="runs/latest.json")["Body"].read())
        if now["run_id"] != pointer["run_id"]:
            break
        time.sleep(0.5)
    print(f"[retrain on upload] a run promoted {time.monotonic() - started:.1f} s after the upload")
    assert "-s3-" in now["run_id"], now
    assert now["previous_run_id"] == pointer["run_id"]
    assert now["dataset_sha256"] == hashlib.sha256(reversed_rows).hexdigest()
    assert f"runs/{now['run_id']}/metrics.json" in object_keys(s3, DATA_BUCKET) - before


def comparable_notifications(configuration: dict[str, Any]) -> list[Any]:
    return sorted(
        (
            c["Id"],
            c["LambdaFunctionArn"],
            sorted(c["Events"]),
            sorted((r["Name"].lower(), r["Value"]) for r in c["Filter"]["Key"]["FilterRules"]),
        )
        for c in configuration.get("LambdaFunctionConfigurations", [])
    )


def check_destroyed(aws: dict[str, Any]) -> None:
    s3, iam, lam = aws["s3"], aws["iam"], aws["lambda"]
    for bucket in (DATA_BUCKET, MODELS_BUCKET, ARTIFACTS_BUCKET):
        assert not bucket_exists(s3, bucket)
    names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert not names & set(FUNCTIONS.values())
    with pytest.raises(ClientError):
        iam.get_role(RoleName=ROLE)


def planned_changes(tf: Terraform, variables: list[str]) -> dict[str, set[str]]:
    """{resource address: changed attributes} of a plan (empty: nothing to do)."""
    plan_file = tf.workdir / "second.tfplan"
    tf.ok("plan", "-input=false", f"-out={plan_file}", *variables)
    shown = json.loads(tf.ok("show", "-json", str(plan_file)).stdout)
    changes: dict[str, set[str]] = {}
    for change in shown.get("resource_changes", []):
        if change["change"]["actions"] in (["no-op"], ["read"]):
            continue
        before = change["change"].get("before") or {}
        after = change["change"].get("after") or {}
        keys = set(before) | set(after)
        changes[change["address"]] = {k for k in keys if before.get(k) != after.get(k)}
    return changes


def invoke(lam: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A synchronous invoke through the Lambda API; fails the test on a function error."""
    started = time.monotonic()
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read())
    print(f"[invoke {name}] {time.monotonic() - started:.1f} s")
    assert "FunctionError" not in response, payload
    assert isinstance(payload, dict)
    return payload


def object_keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


@pytest.fixture(scope="module")
def ministack312(
    ministack_python312: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedEmulator]:
    """MiniStack on CPython 3.12 (it runs the cp312 zip's functions), on a free port."""
    state = tmp_path_factory.mktemp("ministack312") / "state"
    emulator = EmbeddedEmulator("127.0.0.1", free_port(), state, python=ministack_python312)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.mark.slow
def test_zip_end_to_end_on_ministack(
    terraform_bin: str,
    ministack312: EmbeddedEmulator,
    lambda_zip: LambdaZip,
    dataset_path: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    endpoint = ministack312.endpoint_url
    aws = clients(endpoint)
    variables = [
        "-var-file=localstack.tfvars",
        f"-var=endpoint_url={endpoint}",
        f"-var=dataset_path={dataset_path}",
        "-var=package_type=Zip",
        f"-var=lambda_zip_path={lambda_zip.path}",
        # the S3 notification and its Lambda permission in the exhaustive suite (under load
        # MiniStack once answered the permission's first AddPermission late, and the
        # provider's retries then met "statement exists" for five minutes)
        f"-var=retrain_on_upload={'true' if FULL else 'false'}",
    ]
    with applied(terraform_bin, tmp_path, variables, "Zip") as tf:
        check_deployment(tf, aws, dataset_path, "Zip", lambda_zip.path)
        if FULL:
            check_retrain_on_upload_declared(tf, aws)

        # both functions run from the uploaded zip: the original flow, `{}` each
        trained = invoke(aws["lambda"], FUNCTIONS["ingestion"], {})
        assert trained["n_test"] == 109
        scored = invoke(aws["lambda"], FUNCTIONS["inference"], {})
        assert scored["run_id"] == trained["run_id"]
        assert scored["score"] == "65.29%"
        s3 = aws["s3"]
        assert s3.get_object(Bucket=DATA_BUCKET, Key="score.txt")["Body"].read() == b"65.29%"
        assert {"x_test.joblib", "y_test.joblib"} <= object_keys(s3, DATA_BUCKET)
        assert "model.joblib" in object_keys(s3, MODELS_BUCKET)

        # the API in LocalStack mode, invoking through the Lambda API
        log = tmp_path_factory.mktemp("api-on-ministack") / "server.log"
        env = {"AWS_ENDPOINT_URL": endpoint, "LMF_INVOKER": "lambda"}
        api = ApiServer(log, ["--no-run"], env)
        try:
            with httpx.Client(base_url=api.url, timeout=600) as http:
                ready = http.get("/ready")
                assert ready.status_code == 200, ready.text
                assert ready.json()["mode"] == "localstack"
                run = http.post("/pipeline/runs", json={})
                assert run.status_code == 201, run.text
                assert run.json()["status"] == "succeeded", run.json()
                assert run.json()["metrics"]["score"] == "65.29%", run.json()
                assert run.json()["run_id"] != trained["run_id"]
                predicted = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]})
                assert predicted.status_code == 200, predicted.text
                assert predicted.json()["run_id"] == run.json()["run_id"]
        finally:
            api.stop()

        # idempotent: a second plan has nothing to do, but for one documented MiniStack
        # deviation (it drops the tags of a multipart upload: the 71 MB zip object)
        changes = planned_changes(tf, variables)
        assert changes in ({}, {"aws_s3_object.lambda_zip[0]": {"tags_all"}}), changes

        # retrain on upload: a new dataset written to the data bucket is a run (trained,
        # scored and promoted by the zip's ingestion function, invoked by S3). Last: the
        # dataset object is Terraform's, which then plans to upload its own again.
        if FULL:
            check_an_upload_is_a_run(aws, dataset_path)
    check_destroyed(aws)


@pytest.mark.slow
@pytest.mark.full
def test_image_apply_then_destroy_on_moto(
    terraform_bin: str, private_moto: str, dataset_path: Path, tmp_path: Path
) -> None:
    aws = clients(private_moto)
    variables = [
        "-var-file=localstack.tfvars",
        f"-var=endpoint_url={private_moto}",
        f"-var=dataset_path={dataset_path}",
        "-var=package_type=Image",
        f"-var=image_uri={IMAGE_URI}",
        "-var=lambda_zip_path=/nonexistent.zip",
    ]
    with applied(terraform_bin, tmp_path, variables, "Image") as tf:
        check_deployment(tf, aws, dataset_path, "Image", None)
        plan = tf.run("plan", "-detailed-exitcode", "-input=false", *variables)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        # a changed dataset file is uploaded again (the etag follows the content)
        changed = tmp_path / "housing-changed.csv"
        changed.write_bytes(dataset_path.read_bytes() + b"\n")
        plan = tf.run(
            "plan", "-detailed-exitcode", "-input=false", *variables, f"-var=dataset_path={changed}"
        )
        assert plan.returncode == 2, plan.stdout + plan.stderr
        assert "aws_s3_object.dataset will be updated in-place" in plan.stdout
    check_destroyed(aws)
