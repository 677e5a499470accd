"""Bring your own data: schema inference and validation of a large CSV, warm runs and predict
throughput through the API.

    .venv/bin/python benchmarks/datasets.py                      # all three parts (~3-4 min)
    .venv/bin/python benchmarks/datasets.py --only schema --rows 1000000 --rounds 3
    .venv/bin/python benchmarks/datasets.py --only schema --profile infer_schema
    .venv/bin/python benchmarks/datasets.py --only run --runs 10
    .venv/bin/python benchmarks/datasets.py --only predict --seconds 5

Three parts (``--only`` picks one; repeat it to pick several):
- schema: a generated CSV of ``--rows`` rows x 20 columns (10 floats, 4 integers of which two
  have empty cells, 2 yes/no, 3 text categories of 5, 10 and 25 levels, a two-class text
  target), cached under ``--workdir``. Each stage (``tabular.parse``, ``tabular.infer_schema``,
  ``tabular.validate`` against the inferred schema with ``RecordLines``, and
  ``fit_encoding`` + ``encode`` on an 80/20 split as a run does them) runs in a fresh process
  per round: what it needs is made first, then the peak RSS is reset (``/proc/self/clear_refs``)
  so the stage's ``ru_maxrss`` is its own. Prints min and median time over ``--rounds``, the
  median peak RSS, the RSS held when the stage starts (its inputs) and the baseline RSS after
  the imports. ``--profile STAGE`` prints the stage's cProfile instead (one process).
- run: ``local-ml-flow serve --embedded --no-run`` on free ports with private state and
  cache; registers a 10k-row classification dataset of the same shape once (``PUT
  /datasets/{name}``), then per model (logistic, gradient_boosting) one warm-up and ``--runs``
  timed ``POST /datasets/{name}/runs`` (201, waits for the run): median, min, max.
- predict: on the same kind of server, ``POST /datasets/{name}/predict`` (one row per request,
  sequential, one keep-alive httpx client) against ``GET /health`` (measured before and after,
  averaged), and the housing ``POST /predict`` (one house): requests/s, p50 and p99 latency,
  and each one's throughput as a share of /health's. ``--seconds`` per endpoint.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from common import free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOUSING = Path(os.environ.get("LMF_DATASET_PATH", ROOT.parent / "shared/data/housing.csv"))
TARGET = "outcome"
STAGES = ("parse", "infer_schema", "validate", "encode")
LEVELS = {"cat_5": 5, "cat_10": 10, "cat_25": 25}
WORDS = {"cat_5": "tier", "cat_10": "region", "cat_25": "product"}
NAME = "bench"
MODELS = ("logistic", "gradient_boosting")
HOUSE = {
    "area": 7420,
    "bedrooms": 4,
    "bathrooms": 2,
    "stories": 3,
    "mainroad": "yes",
    "guestroom": "no",
    "basement": "no",
    "hotwaterheating": "no",
    "airconditioning": "yes",
    "parking": 2,
    "prefarea": "yes",
    "furnishingstatus": "furnished",
}


# -- the data -----------------------------------------------------------------------------
def make_frame(rows: int, seed: int = 0) -> Any:
    """``rows`` x 20 columns: 10 floats, 4 integers (int_2 and int_3 with ~5 % empty cells),
    2 yes/no, 3 text categories, and ``outcome`` (accept/reject) that depends on them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    floats = rng.normal(0.0, 1.0, (rows, 10)) * np.arange(1, 11) + np.arange(10) * 5
    for j in range(10):
        columns[f"num_{j}"] = floats[:, j].round(3)
    integers = [
        rng.integers(0, 10, rows),
        rng.integers(1900, 2025, rows),
        rng.integers(0, 100_000, rows),
        rng.integers(-50, 50, rows),
    ]
    for j, values in enumerate(integers):
        column = pd.array(values, dtype="Int64")
        if j >= 2:
            column[rng.random(rows) < 0.05] = pd.NA
        columns[f"int_{j}"] = column
    flags = rng.integers(0, 2, (rows, 2))
    for j in range(2):
        columns[f"flag_{j}"] = np.where(flags[:, j] == 1, "yes", "no")
    codes = {}
    for name, n in LEVELS.items():
        codes[name] = rng.integers(0, n, rows)
        labels = np.array([f"{WORDS[name]}-{i:02d}" for i in range(n)])
        columns[name] = labels[codes[name]]
    score = (
        0.8 * floats[:, 0]
        - 0.3 * (floats[:, 3] - 15) / 4
        + 0.2 * (integers[0] - 4.5)
        + 0.7 * (flags[:, 0] - 0.5)
        + 0.3 * (codes["cat_5"] - 2)
        - 0.04 * (codes["cat_25"] - 12)
        + rng.logistic(0, 1, rows)
    )
    columns[TARGET] = np.where(score > 0, "accept", "reject")
    return pd.DataFrame(columns)


def dataset_csv(rows: int, workdir: Path) -> Path:
    """The cached CSV of ``rows`` rows, written by a child process (this process stays small:
    a child's ``ru_maxrss`` starts from its parent's peak)."""
    path = workdir / f"tabular-{rows}.csv"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--make-csv", str(path), "--rows", str(rows)],
            check=True,
            cwd=ROOT,
        )
        print(f"  (wrote {path}: {time.perf_counter() - started:.1f} s)")
    return path


def write_csv(path: Path, rows: int) -> None:
    partial = path.with_suffix(".partial")
    make_frame(rows).to_csv(partial, index=False)
    partial.replace(path)


# -- part 1: schema, in a fresh process per stage -----------------------------------------
def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> bool:
    """Start the peak RSS afresh (Linux >= 4.0): ``ru_maxrss`` from here is what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def stage_child(stage: str, path: Path, profile: bool) -> None:
    """One stage in this fresh process, what it needs made first; JSON on stdout."""
    import numpy as np

    from local_ml_flow.ml import tabular
    from local_ml_flow.ml.dataset import RecordLines

    baseline = rss_mb()
    data = path.read_bytes()
    limits = {"max_bytes": len(data) + 1, "max_rows": 10**9}
    timings: dict[str, float] = {}
    result: dict[str, Any] = {}
    frame: Any = None
    header: list[str] = []
    schema: Any = None
    train: Any = None
    test: Any = None
    if stage != "parse":
        frame, header = tabular.parse(data, **limits)
    if stage in ("validate", "encode"):
        schema = tabular.infer_schema(frame, TARGET)
    if stage == "encode":
        order = np.random.default_rng(0).permutation(len(frame))
        cut = int(len(frame) * 0.8)
        train, test = frame.iloc[order[:cut]], frame.iloc[order[cut:]]
        del frame  # a run holds its two splits (and the frame: kept out, to see the stage)
    held = rss_mb()
    isolated = reset_peak()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    if stage == "parse":
        frame, header = tabular.parse(data, **limits)
        result["shape"] = list(frame.shape)
    elif stage == "infer_schema":
        schema = tabular.infer_schema(frame, TARGET)
        result["kinds"] = [c.kind for c in schema.columns]
        result["task"] = schema.task
    elif stage == "validate":
        problems = tabular.validate(frame, header, schema, RecordLines(data))
        result["problems"] = len(problems)
    else:
        encoding = tabular.fit_encoding(train, schema, schema.features)
        timings["fit_s"] = time.perf_counter() - started
        x_train = tabular.encode(train, encoding)
        x_test = tabular.encode(test, encoding)
        timings["encode_s"] = time.perf_counter() - started - timings["fit_s"]
        result["inputs"] = int(x_train.shape[1])
        result["cells"] = int(x_train.size + x_test.size)
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                **timings,
                "baseline_mb": baseline,
                "held_mb": held,
                "peak_mb": peak,
                "isolated": isolated,
                **result,
            }
        )
    )


def run_stage(stage: str, path: Path, profile: bool = False) -> dict[str, Any]:
    command = [sys.executable, __file__, "--stage", stage, "--csv", str(path)]
    done = subprocess.run(
        [*command, *(["--profile", stage] if profile else [])],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=ROOT,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def schema_part(rows: int, rounds: int, workdir: Path) -> None:
    path = dataset_csv(rows, workdir)
    size = path.stat().st_size / 1e6
    print(
        f"schema: {rows:,} rows x 20 columns ({size:.0f} MB CSV), one fresh process per stage"
        f" and round; min / median of {rounds} rounds:"
    )
    found: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGES}
    for _ in range(rounds):
        for stage in STAGES:
            found[stage].append(run_stage(stage, path))
    labels = {
        "parse": "tabular.parse",
        "infer_schema": "tabular.infer_schema",
        "validate": "tabular.validate (+RecordLines)",
        "encode": "fit_encoding + encode",
    }
    for stage in STAGES:
        figures = found[stage]
        times = [f["seconds"] for f in figures]

        def median(key: str, figures: list[dict[str, Any]] = figures) -> float:
            return float(statistics.median(f[key] for f in figures))

        peak, held = median("peak_mb"), median("held_mb")
        per_million = min(times) / rows * 1e6
        print(
            f"  {labels[stage]:32} {min(times):6.2f} / {statistics.median(times):6.2f} s"
            f" ({per_million:5.2f} s per 1M rows)  peak RSS {peak:6.0f} MB"
            f" (held at start {held:5.0f} MB, stage +{max(0.0, peak - held):5.0f} MB)"
        )
        first = figures[0]
        if stage == "encode":
            print(
                f"  {'':32}   fit_encoding {median('fit_s'):.2f} s, encode (train + test)"
                f" {median('encode_s'):.2f} s; {first['inputs']} model inputs,"
                f" {first['cells'] / 1e6:.0f}M cells"
            )
        elif stage == "infer_schema":
            counts = {k: first["kinds"].count(k) for k in dict.fromkeys(first["kinds"])}
            shown = ", ".join(f"{n} {k}" for k, n in counts.items())
            print(f"  {'':32}   {first['task']}; columns: {shown}")
        elif stage == "validate":
            print(f"  {'':32}   problems found: {first['problems']} (expected 0)")
    baseline = statistics.median(f["baseline_mb"] for fs in found.values() for f in fs)
    isolated = all(f["isolated"] for fs in found.values() for f in fs)
    print(
        f"  baseline RSS after imports {baseline:.0f} MB; peak = ru_maxrss of the stage's process,"
        + (
            " reset after its inputs were made"
            if isolated
            else " NOT reset (no clear_refs): includes making its inputs"
        )
    )


def profile_part(stage: str, rows: int, workdir: Path) -> None:
    path = dataset_csv(rows, workdir)
    print(f"cProfile of {stage} on {rows:,} rows (on stderr):", flush=True)
    figures = run_stage(stage, path, profile=True)
    print(f"  {stage}: {figures['seconds']:.2f} s under the profiler")


# -- parts 2 and 3: a real server -----------------------------------------------------------
@contextlib.contextmanager
def serve(housing: Path) -> Iterator[httpx.Client]:
    """``serve --embedded --no-run`` on free ports, private state and cache; a client."""
    home = Path(tempfile.mkdtemp(prefix="lmf-bench-datasets-"))
    port = free_port()
    env = {
        **os.environ,
        "LMF_EMBEDDED_PORT": str(free_port()),
        "LMF_STATE_DIR": str(home / "state"),
        "LMF_CACHE_DIR": str(home / "cache"),
    }
    command = [sys.executable, "-m", "local_ml_flow.cli", "serve", "--embedded", "--no-run"]
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [*command, "--dataset", str(housing), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the server did not come up:\n{(home / 'server.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=600) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def small_csv(rows: int) -> tuple[bytes, list[dict[str, Any]]]:
    """The classification dataset's CSV and some of its rows as predict requests."""
    frame = make_frame(rows, seed=1)
    sample = frame.drop(columns=[TARGET]).head(500).astype(object)
    records: list[dict[str, Any]] = sample.where(sample.notna(), None).to_dict("records")
    for record in records:  # numpy scalars as JSON numbers, empty cells as null
        for key, value in record.items():
            if hasattr(value, "item"):
                record[key] = value.item()
    return frame.to_csv(index=False).encode(), records


def register(client: httpx.Client, data: bytes) -> dict[str, Any]:
    started = time.perf_counter()
    response = client.put(
        f"/datasets/{NAME}",
        files={"file": ("data.csv", data, "text/csv")},
        data={"target": TARGET},
    )
    if response.status_code != 200:
        raise SystemExit(f"PUT /datasets/{NAME}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    body["seconds"] = time.perf_counter() - started
    return body


def one_run(client: httpx.Client, model: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post(f"/datasets/{NAME}/runs", json={"model": model})
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"POST /datasets/{NAME}/runs: {response.status_code} {response.text}")
    run: dict[str, Any] = response.json()
    if run["status"] != "succeeded":
        raise SystemExit(f"run {run['run_id']} {run['status']}: {run.get('error')}")
    return seconds, run


def run_part(client: httpx.Client, data: bytes, rows: int, repeats: int) -> None:
    registered = register(client, data)
    features = sum(1 for c in registered["schema"]["columns"] if c["feature"])
    print(
        f"run: {rows:,}-row classification dataset ({len(data) / 1e6:.1f} MB, {features}"
        f" features, labels {registered['schema']['labels']}), registered in"
        f" {registered['seconds'] * 1000:.0f} ms; POST /datasets/{NAME}/runs (201, waits for"
        f" the run), 1 warm-up + {repeats} timed:"
    )
    for model in MODELS:
        one_run(client, model)
        times, runs = [], []
        for _ in range(repeats):
            seconds, run = one_run(client, model)
            times.append(seconds * 1000)
            runs.append(run)
        metrics = runs[-1]["metrics"]
        print(
            f"  {model:18} median {statistics.median(times):6.0f} ms  (min {min(times):6.0f},"
            f" max {max(times):6.0f})  accuracy {metrics['accuracy']:.3f},"
            f" roc_auc {metrics['roc_auc']:.3f}, n_test {metrics['n_test']}"
        )


def drive(
    client: httpx.Client, method: str, path: str, bodies: list[Any] | None, seconds: float
) -> dict[str, Any]:
    """Sequential requests for ``seconds`` on one keep-alive connection."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    i = 0
    while time.perf_counter() < deadline:
        body = bodies[i % len(bodies)] if bodies else None
        i += 1
        t0 = time.perf_counter()
        response = client.request(method, path, json=body)
        latencies.append((time.perf_counter() - t0) * 1000)
        errors += response.status_code >= 300
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "n": len(latencies),
        "errors": errors,
    }


def predict_part(
    client: httpx.Client, data: bytes, records: list[dict[str, Any]], seconds: float, fresh: bool
) -> None:
    if fresh:
        register(client, data)
    _, run = one_run(client, "logistic")  # the served model: a logistic one, current
    housing = client.post("/pipeline/runs", json={})
    if housing.status_code != 201:
        raise SystemExit(f"POST /pipeline/runs: {housing.status_code} {housing.text[:300]}")
    dataset_bodies = [{"rows": [r]} for r in records]
    endpoints: list[tuple[str, str, str, list[Any] | None]] = [
        ("health", "GET", "/health", None),
        (f"{NAME} predict", "POST", f"/datasets/{NAME}/predict", dataset_bodies),
        ("housing predict", "POST", "/predict", [{"houses": [HOUSE]}]),
    ]
    for _, method, path, bodies in endpoints:  # warm: the model caches, the connection
        for i in range(20):
            client.request(method, path, json=bodies[i % len(bodies)] if bodies else None)
    results = {label: drive(client, m, p, b, seconds) for label, m, p, b in endpoints}
    again = drive(client, "GET", "/health", None, seconds)
    health = results["health"]
    for key in ("rps", "p50", "p99"):
        health[key] = (health[key] + again[key]) / 2
    health["n"] += again["n"]
    health["errors"] += again["errors"]
    print(
        f"predict: one row per request, sequential, one keep-alive client, {seconds:g} s each"
        f" (/health before and after, averaged); served: {run['parameters']['model']}"
        f" run of {NAME}, housing's first run:"
    )
    for label, method, path, _ in endpoints:
        r = results[label]
        share = r["rps"] / health["rps"]
        print(
            f"  {method:4} {path:26} {r['rps']:6.0f} req/s ({share:4.0%} of /health)"
            f"  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  n {r['n']:6}"
            f"  non-2xx {r['errors']}"
        )
    ours, theirs = results[f"{NAME} predict"], results["housing predict"]
    print(
        f"  ratio /datasets/{NAME}/predict to /health: {ours['rps'] / health['rps']:.2f}"
        f" (housing /predict: {theirs['rps'] / health['rps']:.2f}); p50 over /health's:"
        f" +{ours['p50'] - health['p50']:.2f} ms (housing +{theirs['p50'] - health['p50']:.2f} ms)"
    )


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", choices=["schema", "run", "predict"], help="repeatable"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the schema CSV")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per stage")
    parser.add_argument("--run-rows", type=int, default=10_000, help="rows of the run dataset")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per model")
    parser.add_argument("--seconds", type=float, default=5.0, help="per predict endpoint")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_HOUSING, help="housing.csv")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--profile", choices=STAGES, help="cProfile of one schema stage")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--make-csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_csv is not None:
        write_csv(args.make_csv, args.rows)
        return
    if args.stage is not None:
        stage_child(args.stage, args.csv, profile=args.profile is not None)
        return
    parts = args.only or ["schema", "run", "predict"]
    started = time.perf_counter()
    if "schema" in parts:
        if args.profile:
            profile_part(args.profile, args.rows, args.workdir)
        else:
            schema_part(args.rows, args.rounds, args.workdir)
    if "run" in parts or "predict" in parts:
        data, records = small_csv(args.run_rows)
        with serve(args.dataset) as client:
            if "run" in parts:
                run_part(client, data, args.run_rows, args.runs)
            if "predict" in parts:
                predict_part(client, data, records, args.seconds, fresh="run" not in parts)
    print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
