"""This project's warm pipeline against the original student project's, on the same emulator.

    .venv/bin/python benchmarks/versus_original.py                      # MiniStack (embedded)
    .venv/bin/python benchmarks/versus_original.py --before 3f1a6db     # + that commit's src/
    .venv/bin/python benchmarks/versus_original.py --emulator moto      # moto's server
    .venv/bin/python benchmarks/versus_original.py --original-clients per-call

Both projects' handlers run in-process with ``{}`` events, as ``aws lambda invoke`` sends
them: ingestion then inference. Ours are ``local_ml_flow.handlers.ingestion`` and
``inference`` (ingestion promotes its run, inference scores the latest); the original's are
re-implemented request for request in ``original_project.py`` (its keys: ``housing.csv``,
``model.joblib``, ``x_test.joblib``, ``y_test.joblib``, ``score.txt``). One emulator serves
both, by default MiniStack as ``serve --embedded`` starts it (durable writes: fsync'd and
journalled); each benchmark process has its own buckets for each project.

Each child process alternates the two projects run by run (original then ours, then ours
then original, ...) after two warm-up runs of each, so the machine's load hits both alike;
``--before REV`` adds child processes running that commit's ``src/``, alternating with this
checkout's (A B A B). Per tree it prints the median time of a run (both functions) for ours
and for the original measured in the same processes, their ratio, and per function the
median time, the CPU time the handler's process spent (the rest is waiting on the emulator),
the S3 requests and the sequential round trips on the critical path (requests that overlap
count once; see ``common.Counter``), with the operations of the last run.
``--original-clients per-call`` builds the original's boto3 clients on every call as its
``config()`` does (the default reuses one client: the stricter comparison for us).
Prints figures; asserts nothing. Target (issue 24): ours <= 1.0x the original on MiniStack.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import DATASET, Counter, export, run_child, start_ministack, start_moto

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("ingestion", "inference")


def child(endpoint: str, runs: int, per_call_clients: bool) -> None:
    """One process: both projects' buckets and dataset, 2 warm-up runs of each, then ``runs``
    timed runs of each, alternating."""
    import boto3

    import local_ml_flow
    from local_ml_flow import handlers
    from local_ml_flow.settings import Settings
    from local_ml_flow.storage import make_store
    from original_project import Original

    suffix = uuid.uuid4().hex[:10]
    settings = Settings(
        _env_file=None, data_bucket=f"ours-data-{suffix}", models_bucket=f"ours-models-{suffix}"
    )
    theirs = (f"orig-data-{suffix}", f"orig-models-{suffix}")
    admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    dataset = DATASET.read_bytes()
    for data, models in ((settings.data_bucket, settings.models_bucket), theirs):
        admin.create_bucket(Bucket=data)
        admin.create_bucket(Bucket=models)
        admin.put_object(Bucket=data, Key="housing.csv", Body=dataset)

    def counted(client: Any, counter: Counter) -> Any:
        client.meta.events.register("before-send.s3", counter.sent)
        client.meta.events.register("response-received.s3", counter.received)
        return client

    ours_counter, original_counter = Counter(), Counter()
    store = make_store(settings, endpoint_url=endpoint)
    counted(store.s3, ours_counter)

    def original_client() -> Any:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        return counted(s3, original_counter)

    original = Original(
        original_client(), *theirs, new_client=original_client if per_call_clients else None
    )
    kw: dict[str, Any] = {"store": store, "settings": settings}

    def ours() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, handler in (("ingestion", handlers.ingestion), ("inference", handlers.inference)):
            started, cpu = time.perf_counter(), time.process_time()
            handler({}, **kw)
            out[name] = {
                "seconds": time.perf_counter() - started,
                "cpu": time.process_time() - cpu,
                **ours_counter.take(),
            }
        return out

    def the_original() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, handler in (("ingestion", original.ingestion), ("inference", original.inference)):
            started, cpu = time.perf_counter(), time.process_time()
            answer = handler({})
            out[name] = {
                "seconds": time.perf_counter() - started,
                "cpu": time.process_time() - cpu,
                **original_counter.take(),
            }
            if answer["statusCode"] != 200:
                raise SystemExit(f"the original's {name} failed: {answer['body']}")
        return out

    paths = {"ours": ours, "original": the_original}
    for _ in range(2):
        for path in paths.values():
            path()
    figures: dict[str, Any] = {"module": local_ml_flow.__file__, "ours": [], "original": []}
    for i in range(runs):
        order = ("original", "ours") if i % 2 == 0 else ("ours", "original")
        for name in order:
            figures[name].append(paths[name]())
    print(json.dumps(figures))


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def report(label: str, children: list[dict[str, Any]]) -> None:
    """A tree's figures: ours and the original (from the same processes), per function."""
    runs = {name: [run for c in children for run in c[name]] for name in ("ours", "original")}
    total = {
        name: [sum(run[f]["seconds"] for f in FUNCTIONS) for run in runs[name]] for name in runs
    }
    ratio = statistics.median(total["ours"]) / statistics.median(total["original"])
    # each run of ours against the original's run next to it (same process, same moment)
    paired = statistics.median(a / b for a, b in zip(total["ours"], total["original"], strict=True))
    print(
        f"  {label}: ours {_ms(total['ours']):5.1f} ms, the original {_ms(total['original']):5.1f}"
        f" ms (medians of {len(total['ours'])} runs each): {ratio:.2f}x the original"
        f" (median of the paired runs' ratios {paired:.2f}x)"
    )
    for name in ("ours", "original"):
        for function in FUNCTIONS:
            figures = [run[function] for run in runs[name]]
            requests = statistics.median(f["requests"] for f in figures)
            waves = statistics.median(f["waves"] for f in figures)
            print(
                f"    {name:<8} {function:<9} {_ms([f['seconds'] for f in figures]):5.1f} ms"
                f" (CPU here {_ms([f['cpu'] for f in figures]):5.1f} ms),"
                f" {requests:3.0f} S3 requests, {waves:3.0f} sequential round trips:"
                f" {figures[-1]['ops']}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="a commit of ours to compare with too (interleaved)")
    parser.add_argument("--rounds", type=int, default=4, help="child processes per tree")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per child and project")
    parser.add_argument("--emulator", choices=("ministack", "moto"), default="ministack")
    parser.add_argument(
        "--original-clients",
        choices=("shared", "per-call"),
        default="shared",
        help="the original's boto3 clients: one for every call, or new ones per call as its"
        " config() makes them",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    per_call = args.original_clients == "per-call"
    if args.child:
        child(args.endpoint, args.runs, per_call)
        return
    server: Any
    server, endpoint = start_ministack() if args.emulator == "ministack" else start_moto()
    workdir = Path(tempfile.mkdtemp(prefix="lmf-versus-"))
    try:
        trees = {"after": ROOT / "src"}
        if args.before:
            trees = {"before": export(args.before, workdir), **trees}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.rounds):  # A B A B: the machine's load hits both alike
            for name, src in trees.items():
                child_args = ["--endpoint", endpoint, "--runs", str(args.runs)]
                child_args += ["--original-clients", args.original_clients]
                results[name].append(run_child(__file__, src, child_args))
        print(
            f"warm pipeline, {{}} events, handlers in-process, {args.emulator} on loopback;"
            f" {args.rounds} processes x {args.runs} runs per tree, projects alternating run by"
            f" run, trees interleaved; the original's clients: {args.original_clients}"
        )
        for name in trees:
            report(name + (f" ({args.before})" if name == "before" else ""), results[name])
        print(f"target (issue 24): ours <= 1.0x the original on MiniStack; load {os.getloadavg()}")
    finally:
        if args.emulator == "moto":
            server.terminate()
            server.wait()
        else:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
