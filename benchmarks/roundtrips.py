"""S3 round trips of a warm pipeline run: handlers in-process, a moto server on loopback.

    .venv/bin/python benchmarks/roundtrips.py                       # this checkout only
    .venv/bin/python benchmarks/roundtrips.py --before e15a4c2      # interleaved A B A B
    .venv/bin/python benchmarks/roundtrips.py --emulator ministack  # the embedded mode's S3

Calls ``handlers.ingestion({})`` then ``handlers.inference({})`` (the ``aws lambda invoke``
path: ingestion promotes its own run, inference scores the latest) and, with ``--runner``,
also ingestion + inference + promotion as ``runner.run_pipeline`` does them for the API and
the CLI (``{"run_id", "promote": false}``, ``{"run_id"}``, then ``pipeline.promote``).

For each function it prints the S3 requests per run and the sequential round trips on the
critical path: botocore's ``before-send`` / ``response-received`` hooks on the client count
requests in flight, and a request sent while none is in flight starts a new round trip (so
requests that overlap count once). ``--before REV`` exports that commit's ``src/`` and runs
both trees in alternating child processes (A B A B ...) against the same moto server, so a
loaded machine slows both alike; figures are medians. It also prints what one request costs
on the emulator and whether six at once overlap (moto's server answers them one after the
other, so there time follows the number of requests, not of round trips). Prints figures;
asserts nothing.
Target (issue 13): warm <= 65 ms, <= 6 sequential round trips per function.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import DATASET, Counter, export, run_child, start_ministack, start_moto

ROOT = Path(__file__).resolve().parent.parent


def child(endpoint: str, runs: int, runner: bool) -> None:
    """One process: fresh buckets, the dataset, 2 warm-up runs, then ``runs`` timed runs."""
    import boto3

    import local_ml_flow
    from local_ml_flow import handlers, pipeline
    from local_ml_flow.runlog import RunLog
    from local_ml_flow.settings import Settings
    from local_ml_flow.storage import make_store

    suffix = uuid.uuid4().hex[:10]
    settings = Settings(
        _env_file=None, data_bucket=f"bench-data-{suffix}", models_bucket=f"bench-models-{suffix}"
    )
    admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for bucket in (settings.data_bucket, settings.models_bucket):
        admin.create_bucket(Bucket=bucket)
    admin.put_object(Bucket=settings.data_bucket, Key="housing.csv", Body=DATASET.read_bytes())
    store = make_store(settings, endpoint_url=endpoint)
    counter = Counter()
    store.s3.meta.events.register("before-send.s3", counter.sent)
    store.s3.meta.events.register("response-received.s3", counter.received)
    kw: dict[str, Any] = {"store": store, "settings": settings}

    def lambda_path() -> dict[str, dict[str, Any]]:
        handlers.ingestion({}, **kw)
        ingestion = counter.take()
        handlers.inference({}, **kw)
        return {"ingestion": ingestion, "inference": counter.take()}

    def runner_path() -> dict[str, dict[str, Any]]:
        run_id = uuid.uuid4().hex
        handlers.ingestion({"run_id": run_id, "promote": False}, **kw)
        ingestion = counter.take()
        handlers.inference({"run_id": run_id}, **kw)
        inference = counter.take()
        runs = RunLog.from_settings(store, settings)
        if hasattr(pipeline, "servable"):  # as the runner promotes (a commit before: its own)
            pipeline.promote(runs, run_id, settings.promotion)
        else:
            runs.promote(run_id)
        return {"ingestion": ingestion, "inference": inference, "promotion": counter.take()}

    paths = {"lambda": lambda_path, **({"runner": runner_path} if runner else {})}
    out: dict[str, Any] = {"module": local_ml_flow.__file__}
    for name, path in paths.items():
        for _ in range(2):
            path()
        times, counts = [], []
        for _ in range(runs):
            started = time.perf_counter()
            counts.append(path())
            times.append(time.perf_counter() - started)
        out[name] = {"times": times, "counts": counts}
    print(json.dumps(out))


def request_floor(endpoint: str) -> dict[str, float]:
    """Median time of one small PUT, one GET, and six PUTs at once against the emulator:
    what a round trip costs there, and whether overlapping requests are served in parallel
    (each PUT to a new key, on a new bucket: measured before the runs fill the emulator)."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=8),
    )
    bucket = f"bench-floor-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    body = b"x" * 4096
    s3.put_object(Bucket=bucket, Key="read", Body=body)

    with ThreadPoolExecutor(6) as pool:
        calls: dict[str, Callable[[], Any]] = {
            "put": lambda: s3.put_object(Bucket=bucket, Key=uuid.uuid4().hex, Body=body),
            "get": lambda: s3.get_object(Bucket=bucket, Key="read")["Body"].read(),
            "six_puts": lambda: list(
                pool.map(lambda i: s3.put_object(Bucket=bucket, Key=f"p{i}", Body=body), range(6))
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in calls}
        for round_ in range(45):  # interleaved, so the machine's load hits all three alike
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                if round_ >= 5:  # warm-up
                    times[name].append(time.perf_counter() - started)
    return {name: statistics.median(taken) * 1000 for name, taken in times.items()}


def import_seconds(src: Path) -> float:
    """``import local_ml_flow.handlers`` in a fresh process (``-X importtime``'s total)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import local_ml_flow.handlers"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
        cwd=ROOT,
    )
    last = [line for line in done.stderr.splitlines() if line.endswith("local_ml_flow.handlers")]
    return int(last[-1].split("|")[1]) / 1e6


def report(label: str, results: list[dict[str, Any]], path: str) -> None:
    times = [t for r in results for t in r[path]["times"]]
    counts = [c for r in results for c in r[path]["counts"]]
    print(
        f"  {label:<8} {path:<7} median {statistics.median(times) * 1000:6.1f} ms"
        f" (min {min(times) * 1000:5.1f}, n {len(times)})"
    )
    for function in counts[0]:
        requests = statistics.median(c[function]["requests"] for c in counts)
        waves = statistics.median(c[function]["waves"] for c in counts)
        print(f"           {function:<10} {requests:4.0f} S3 requests, {waves:3.0f} sequential")
        print(f"             {counts[-1][function]['ops']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="a commit to compare with (interleaved)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per child process")
    parser.add_argument("--runner", action="store_true", help="also the runner's path")
    parser.add_argument(
        "--emulator",
        choices=("moto", "ministack"),
        default="moto",
        help="the S3 on loopback: moto's server (the issue's measurement) or MiniStack"
        " (what the embedded mode runs)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.endpoint, args.runs, args.runner)
        return
    server: Any
    server, endpoint = start_moto() if args.emulator == "moto" else start_ministack()
    workdir = Path(tempfile.mkdtemp(prefix="lmf-roundtrips-"))
    try:
        trees = {"after": ROOT / "src"}
        if args.before:
            trees = {"before": export(args.before, workdir), **trees}
        floor = request_floor(endpoint)  # on the fresh emulator, before the runs fill it
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        imports: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):  # A B A B: the machine's load hits both alike
            for name, src in trees.items():
                child_args = ["--endpoint", endpoint, "--runs", str(args.runs)]
                child_args += ["--runner"] if args.runner else []
                results[name].append(run_child(__file__, src, child_args))
                imports[name].append(import_seconds(src))
        print(
            f"warm pipeline, handlers in-process, {args.emulator} on loopback; {args.rounds}"
            f" rounds x {args.runs} runs per tree, interleaved:"
        )
        for path in ("lambda", "runner") if args.runner else ("lambda",):
            for name in trees:
                label = f"{name}" + (f" ({args.before})" if name == "before" else "")
                report(label, results[name], path)
        for name in trees:
            print(
                f"  {name:<8} import local_ml_flow.handlers: median"
                f" {statistics.median(imports[name]):.2f} s (n {len(imports[name])})"
            )
        print(
            f"  {args.emulator}: one PUT {floor['put']:.1f} ms, one GET {floor['get']:.1f} ms,"
            f" six PUTs at once {floor['six_puts']:.1f} ms"
            f" ({floor['six_puts'] / floor['put']:.1f}x one: overlapping requests"
            f" {'are served one by one' if floor['six_puts'] > 4 * floor['put'] else 'overlap'})"
        )
        counts = results["after"][-1]["lambda"]["counts"][-1]
        requests = sum(counts[function]["requests"] for function in counts)
        one = (floor["put"] + floor["get"]) / 2
        print(
            f"  floor where requests are served one by one: {requests} requests of the lambda"
            f" path x {one:.1f} ms (one PUT or GET) = {requests * one:.0f} ms; the 65 ms target"
            f" allows {65 / one:.0f} requests"
        )
        print(
            "targets: lambda path <= 65 ms, <= 6 sequential round trips per function;"
            " handler import <= 1.0 s"
        )
    finally:
        if args.emulator == "moto":
            server.terminate()
            server.wait()
        else:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
