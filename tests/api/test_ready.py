"""/ready and 503s follow the AWS endpoint: down, then back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local_ml_flow.api.schemas import EXAMPLE_HOUSE
from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.settings import Settings
from tests.api.conftest import ApiServer, assert_error, start_server
from tests.conftest import emulator_client, free_port


@pytest.fixture(scope="module")
def emulator(dataset_bytes: bytes) -> Iterator[EmbeddedEmulator]:
    """An emulator this test controls (the server reaches it as a LocalStack would be)."""
    emulator = EmbeddedEmulator("127.0.0.1", free_port())
    emulator.start()
    emulator.provision(
        Settings(_env_file=None, data_bucket="lmf-ready-data", models_bucket="lmf-ready-models"),
        dataset_bytes,
    )
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def server_on_endpoint(
    tmp_path_factory: pytest.TempPathFactory, dataset_path: Path, emulator: EmbeddedEmulator
) -> Iterator[ApiServer]:
    env = {
        "AWS_ENDPOINT_URL": emulator.endpoint_url,
        "LMF_INVOKER": "local",
        "LMF_DATA_BUCKET": "lmf-ready-data",
        "LMF_MODELS_BUCKET": "lmf-ready-models",
    }
    api = start_server(tmp_path_factory, dataset_path, args=[], env=env)
    yield api
    api.stop()


def test_ready_goes_503_when_the_emulator_stops_and_200_when_back(
    server_on_endpoint: ApiServer, emulator: EmbeddedEmulator
):
    with httpx.Client(base_url=server_on_endpoint.url, timeout=30) as http:
        first = http.get("/ready")
        assert first.status_code == 200, first.text
        assert first.json()["mode"] == "localstack"

        emulator.stop()
        try:
            down = http.get("/ready")
            assert down.status_code == 503
            assert down.json()["status"] == "not ready"
            assert "s3" in down.json()["missing"]
            assert_error(http.get("/bucket/get-all-buckets"), 503, "EndpointUnreachableError")
            # nothing in memory yet (no run made through this server): they must read S3
            assert_error(http.get("/result/lmf-ready-data"), 503, "EndpointUnreachableError")
            predicted = http.post("/predict", json={"houses": [EXAMPLE_HOUSE]})
            assert_error(predicted, 503, "EndpointUnreachableError")
            assert_error(http.get("/lambda/get-all-lambdas"), 503, "EndpointUnreachableError")
            assert http.get("/health").status_code == 200
        finally:
            emulator.start()

        back = http.get("/ready")
        assert back.status_code == 200, back.text
        assert http.post("/pipeline/runs").status_code == 201
        assert http.get("/result/lmf-ready-data").json()["content"] == "65.29%"


def test_ready_names_what_is_missing(server_on_endpoint: ApiServer, emulator: EmbeddedEmulator):
    lam = emulator_client("lambda", emulator.endpoint_url)
    config = lam.get_function(FunctionName="local-ml-flow-inference")
    lam.delete_function(FunctionName="local-ml-flow-inference")
    try:
        response = httpx.get(f"{server_on_endpoint.url}/ready", timeout=30)
        assert response.status_code == 503
        assert response.json()["missing"] == ["function:local-ml-flow-inference"]
    finally:
        emulator.provision(
            Settings(
                _env_file=None, data_bucket="lmf-ready-data", models_bucket="lmf-ready-models"
            ),
            None,
        )
    assert config["Configuration"]["FunctionName"] == "local-ml-flow-inference"
    assert httpx.get(f"{server_on_endpoint.url}/ready", timeout=30).status_code == 200
