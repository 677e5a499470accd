"""A server full of what makes a dashboard page wide: long run ids, failed runs, a wide
registered dataset with long names, a classification one (used by tests and screenshots)."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.api.conftest import ApiServer
from tests.conftest import emulator_client

# Run ids as long as they may be (100 characters) and without a break opportunity.
LONG_IDS = (
    ("housing_gradient_boosting_all_features_" * 3)[:100],
    ("housing_linear_regression_seed_features_" * 3)[:100],
)
WIDE = "municipal_housing_survey_with_every_column_we_could_find_2026_v2"  # 64 characters
WIDE_LONG_ID = ("survey_ridge_regression_every_column_random_state_42_" * 2)[:100]
IRIS = "iris"
TERMINAL = ("succeeded", "failed", "corrupt")
INGESTION = "local-ml-flow-ingestion"
INFERENCE = "local-ml-flow-inference"


@dataclass
class Rich:
    """What was made: run ids by role, dataset names."""

    housing: dict[str, str] = field(default_factory=dict)
    wide: dict[str, str] = field(default_factory=dict)
    iris: dict[str, str] = field(default_factory=dict)

    def pages(self) -> list[str]:
        """Every dashboard page, with the data above (and the error pages)."""
        h, w = self.housing, self.wide
        compare = "&".join(f"run={h[k]}" for k in ("long0", "long1", "boosting", "seed"))
        wide_compare = "&".join(f"run={w[k]}" for k in ("long", "first"))
        return [
            "/ui",
            "/ui?status=failed",
            f"/ui/runs/{h['long0']}",
            f"/ui/runs/{h['failed']}",
            f"/ui/compare?{compare}",
            "/ui/dataset",
            "/ui/dataset?offset=40",
            "/ui/predict",
            "/ui/runs/no-such-run",
            f"/ui/compare?run={h['long0']}",
            "/ui/datasets",
            f"/ui/datasets/{WIDE}",
            f"/ui/datasets/{WIDE}/runs/{w['long']}",
            f"/ui/datasets/{WIDE}/compare?{wide_compare}",
            f"/ui/datasets/{WIDE}/predict",
            f"/ui/datasets/{IRIS}",
            f"/ui/datasets/{IRIS}/runs/{self.iris['first']}",
            f"/ui/datasets/{IRIS}/predict",
            "/ui/datasets/no-such-dataset",
            f"/ui/datasets/{WIDE}/runs/no-such-run",
        ]


def wide_csv(rows: int = 240) -> bytes:
    """A regression CSV of 24 long-named columns, two categories of long levels, big numbers."""
    rng = random.Random(7)
    numbers = [f"measured_{k:02d}_floor_area_of_the_dwelling_in_square_metres" for k in range(20)]
    levels = [
        "detached house with a garden on every side",
        "semi-detached house sharing one wall",
        "apartment in a building of more than ten floors",
    ]
    regions = ["north_of_the_river_district", "south_of_the_river_district", "old_town"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*numbers, "kind_of_dwelling", "region_of_the_municipality", "sale_price_eur"])
    for _ in range(rows):
        values = [rng.uniform(10, 400) for _ in numbers]
        kind, region = rng.randrange(3), rng.randrange(3)
        price = 2_500 * sum(values[:5]) + 180_000 * kind + 90_000 * region + rng.gauss(0, 40_000)
        writer.writerow(
            [f"{v:.2f}" for v in values] + [levels[kind], regions[region], f"{price:.0f}"]
        )
    return out.getvalue().encode()


def iris_csv() -> bytes:
    """scikit-learn's bundled iris (no download), the target as its species' names."""
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame
    frame["species"] = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    return frame.to_csv(index=False).encode()


def invoke(server: ApiServer, event: dict[str, Any]) -> None:
    """Ingestion then inference with ``event``, as `aws lambda invoke` does (any run id)."""
    lam = emulator_client("lambda", server.emulator_url)
    scoring = {k: v for k, v in event.items() if k in ("dataset", "run_id")}
    for function, body in ((INGESTION, event), (INFERENCE, scoring)):
        answer = lam.invoke(FunctionName=function, Payload=json.dumps(body).encode())
        payload = answer["Payload"].read()
        assert not answer.get("FunctionError"), payload


def register(api: httpx.Client, name: str, data: bytes, target: str) -> None:
    found = api.get(f"/datasets/{name}")
    if found.status_code == 200:
        return
    answer = api.put(
        f"/datasets/{name}",
        files={"file": (f"{name}.csv", data, "text/csv")},
        data={"target": target},
    )
    assert answer.status_code == 200, answer.text


def finished(api: httpx.Client, url: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = dict(api.get(url).json())
        if run["status"] in TERMINAL:
            return run
        time.sleep(0.5)
    raise AssertionError(f"{url} did not finish in {timeout_s}s")


def dataset_run(api: httpx.Client, name: str, body: dict[str, Any]) -> str:
    started = api.post(f"/datasets/{name}/runs", params={"wait": "false"}, json=body)
    assert started.status_code == 202, started.text
    run_id = str(started.json()["run_id"])
    assert finished(api, f"/datasets/{name}/runs/{run_id}")["status"] == "succeeded"
    return run_id


def fill(server: ApiServer) -> Rich:
    """Make the runs and datasets (a server started with ``--run-first``)."""
    made = Rich()
    with httpx.Client(base_url=server.url, timeout=300) as api:
        made.housing["first"] = api.get("/pipeline/runs").json()["runs"][-1]["run_id"]
        invoke(server, {"run_id": LONG_IDS[0], "model": "gradient_boosting"})
        invoke(server, {"run_id": LONG_IDS[1], "feature_set": "seed"})
        made.housing["long0"], made.housing["long1"] = LONG_IDS
        seed = api.post("/pipeline/runs", json={"feature_set": "seed", "random_state": 7})
        made.housing["seed"] = seed.json()["run_id"]
        assert api.post("/pipeline/runs", json={"test_size": 0.001}).status_code == 422
        runs = api.get("/pipeline/runs").json()["runs"]
        made.housing["failed"] = next(r["run_id"] for r in runs if r["status"] == "failed")
        boosting = api.post("/pipeline/runs", json={"model": "gradient_boosting"}).json()
        made.housing["boosting"] = boosting["run_id"]
        api.post("/pipeline/runs", json={}).raise_for_status()  # linear again: current

        register(api, WIDE, wide_csv(), "sale_price_eur")
        made.wide["first"] = dataset_run(api, WIDE, {})
        invoke(server, {"dataset": WIDE, "run_id": WIDE_LONG_ID, "model": "ridge"})
        made.wide["long"] = WIDE_LONG_ID
        register(api, IRIS, iris_csv(), "species")
        made.iris["first"] = dataset_run(api, IRIS, {})
    return made
