"""Pipeline wall time and memory in embedded mode: cold, warm, and synthetic large datasets.

    .venv/bin/python benchmarks/pipeline.py --dataset ../shared/data/housing.csv
    .venv/bin/python benchmarks/pipeline.py --sizes 1000000 --only-sizes --before fc28ab9

Each figure comes from a fresh process (the user's first run: imports, emulator, training).
``--before REV`` runs that commit's ``src/`` (``git archive``) in the same way, alternating
with this checkout (A B A B), so a loaded machine slows both alike. Prints figures; asserts
nothing. Targets (issue 13): 1M rows <= 3 s at <= 700 MB peak RSS; (earlier issues) warm
<= 150 ms, cold <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from inspect import signature
from pathlib import Path
from typing import Any

import numpy as np

from common import export, free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python benchmarks/pipeline.py` from a checkout


def synthetic_csv(rows: int, seed: int = 0) -> bytes:
    """Housing-like rows with a price that depends on the features (so R² means something)."""
    rng = np.random.default_rng(seed)
    area = rng.integers(1500, 16000, rows)
    bedrooms = rng.integers(1, 7, rows)
    bathrooms = rng.integers(1, 5, rows)
    stories = rng.integers(1, 5, rows)
    parking = rng.integers(0, 4, rows)
    yes_no = rng.integers(0, 2, (rows, 6))
    furnishing = rng.integers(0, 3, rows)
    price = (
        area * 250
        + bedrooms * 150_000
        + bathrooms * 900_000
        + stories * 400_000
        + parking * 250_000
        + yes_no @ np.array([400_000, 300_000, 350_000, 800_000, 850_000, 600_000])
        - furnishing * 200_000
        + rng.normal(0, 1_000_000, rows)
    ).clip(500_000)
    words = np.array(["no", "yes"])
    status = np.array(["furnished", "semi-furnished", "unfurnished"])
    header = (
        "price,area,bedrooms,bathrooms,stories,mainroad,guestroom,basement,"
        "hotwaterheating,airconditioning,parking,prefarea,furnishingstatus"
    )
    columns = [
        price.astype(np.int64).astype(str),
        area.astype(str),
        bedrooms.astype(str),
        bathrooms.astype(str),
        stories.astype(str),
        *(words[yes_no[:, i]] for i in range(5)),
        parking.astype(str),
        words[yes_no[:, 5]],
        status[furnishing],
    ]
    body = columns[0]
    for column in columns[1:]:
        body = np.char.add(np.char.add(body, ","), column)
    return (header + "\n" + "\n".join(body.tolist()) + "\n").encode()


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (ru_maxrss keeps the
    peak of the process that forked it, e.g. a parent that generated a large dataset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(dataset: Path, repeats: int) -> None:
    """In a fresh process: imports, emulator, first run, then warm runs; JSON on stdout."""
    t0 = time.perf_counter()
    from local_ml_flow import bootstrap
    from local_ml_flow.events import RunOptions
    from local_ml_flow.runner import run_pipeline
    from local_ml_flow.settings import Settings

    t_import = time.perf_counter()
    state = Path(tempfile.mkdtemp(prefix="lmf-bench-state-"))  # never the user's state
    settings = Settings(
        _env_file=None, embedded_port=free_port(), dataset_path=dataset, state_dir=state
    )
    # as `local-ml-flow run --embedded` starts (a run follows); older trees lack the flag
    known = signature(bootstrap.build).parameters
    follows: dict[str, Any] = {"run_follows": True} if "run_follows" in known else {}
    runtime = bootstrap.build(settings, embedded=True, **follows)
    t_ready = time.perf_counter()
    try:
        first = run_pipeline(runtime.invoker, runtime.runs, settings, RunOptions())
        t_first = time.perf_counter()
        warm = []
        for _ in range(repeats):
            start = time.perf_counter()
            run_pipeline(runtime.invoker, runtime.runs, settings, RunOptions())
            warm.append(time.perf_counter() - start)
    finally:
        runtime.close()
        shutil.rmtree(state, ignore_errors=True)
    print(
        json.dumps(
            {
                "import_s": t_import - t0,
                "emulator_s": t_ready - t_import,
                "first_run_s": t_first - t_ready,
                "warm_s": warm,
                "r2": first["r2"],
                "n_train": first["n_train"],
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def cli_run_seconds(dataset: Path) -> float:
    """Wall time of the user's command, a fresh process from start to exit."""
    with tempfile.TemporaryDirectory(prefix="lmf-bench-state-") as state:
        env = {**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), "LMF_STATE_DIR": state}
        started = time.perf_counter()
        subprocess.run(
            [
                Path(sys.executable).parent / "local-ml-flow",
                "run",
                "--embedded",
                "--dataset",
                dataset,
            ],
            capture_output=True,
            check=True,
            env=env,
        )
        return time.perf_counter() - started


def measure(dataset: Path, repeats: int, src: Path | None = None) -> dict[str, Any]:
    """One fresh process: the first run on ``dataset``, then ``repeats`` warm runs (``src``:
    another tree's code, else this checkout's)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--dataset", str(dataset), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_s"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/housing.csv")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--before", help="a commit to compare the large datasets with")
    parser.add_argument("--rounds", type=int, default=2, help="runs per size and tree")
    parser.add_argument(
        "--only-sizes", action="store_true", help="skip the cold and warm housing.csv figures"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "bench")
    args = parser.parse_args()
    if args.child:
        child(args.dataset, args.repeats)
        return

    if not args.only_sizes:
        housing_figures(args.dataset, args.repeats)
    args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lmf-bench-src-") as tmp:
        trees: dict[str, Path | None] = {"after": None}
        if args.before:
            trees = {f"before ({args.before})": export(args.before, Path(tmp)), **trees}
        print(
            "synthetic housing-like data (one fresh process per run: imports, emulator start,"
            f" first run; median of {args.rounds}):"
        )
        for rows in (int(s) for s in args.sizes.split(",") if s):
            path = args.workdir / f"housing-{rows}.csv"
            if not path.exists():
                path.write_bytes(synthetic_csv(rows))
            found: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            for _ in range(args.rounds):  # A B A B
                for name, src in trees.items():
                    found[name].append(measure(path, 0, src))
            for name, figures in found.items():
                run = statistics.median(f["first_run_s"] for f in figures)
                rss = statistics.median(f["peak_rss_mb"] for f in figures)
                print(
                    f"  {rows:>9,} rows ({path.stat().st_size / 1e6:6.1f} MB) {name:<18}"
                    f" run {run:6.2f} s, peak RSS {rss:6.0f} MB, R² {figures[0]['r2']:.3f}"
                )
    print("targets (issue 13): 1M rows <= 3 s, peak RSS <= 700 MB")


def housing_figures(dataset: Path, repeats: int) -> None:
    """Cold (the CLI, start to exit) and warm figures on the reference dataset."""
    cold_runs = [cli_run_seconds(dataset) for _ in range(3)]
    cold = statistics.median(cold_runs)
    cold_figures = measure(dataset, 0)
    ref = measure(dataset, repeats)
    print(f"housing.csv ({ref['n_train']} train rows), embedded mode, ingestion + inference:")
    print(
        f"  cold: {cold:.2f} s, median of 3 `local-ml-flow run --embedded` processes, start to"
        f" exit   target <= 3 s\n"
        f"        (in a fresh process: imports {cold_figures['import_s']:.2f} s, emulator start"
        f" {cold_figures['emulator_s']:.2f} s, first run {cold_figures['first_run_s']:.3f} s)"
    )
    warm = ref["warm_s"]
    print(
        f"  warm: median {statistics.median(warm) * 1000:.0f} ms over {len(warm)} runs"
        f" (min {min(warm) * 1000:.0f}, max {max(warm) * 1000:.0f})   target <= 150 ms"
    )
    print(f"  R² {ref['r2']:.4f}, peak RSS {ref['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
