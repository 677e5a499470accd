"""``local-ml-flow serve | run | reset | dataset fetch``.

This module imports only light modules: the arguments and the settings are checked, and
``run --embedded`` starts the emulator (launch.py), before pandas, boto3 or scikit-learn load.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from local_ml_flow import __version__, datasource, embedded, launch
from local_ml_flow.errors import LocalMlFlowError
from local_ml_flow.events import RunOptions, parse_event
from local_ml_flow.ml.kinds import ALL_MODEL_KINDS
from local_ml_flow.ml.schema import FEATURE_SETS
from local_ml_flow.settings import Settings

FRESH_HELP = "embedded mode: delete the stored state first (runs, models, datasets)"


def _progress(message: str) -> None:
    print(f"==> {message}", flush=True)


def _exit_on_sigterm(code: int) -> None:
    """SIGTERM ends the program as Ctrl-C does: ``finally`` blocks run, so the embedded
    emulator is stopped gracefully (and saves its state) before the process exits.

    uvicorn restores this handler after its own shutdown and raises the signal again.
    """

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(code)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"LMF_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"error: invalid configuration: {problems}") from None


def _run_options(args: argparse.Namespace) -> RunOptions:
    """The run parameters given on the command line (the others take the configured defaults)."""
    given = {
        "model": args.model,
        "feature_set": args.feature_set,
        "test_size": args.test_size,
        "random_state": args.random_state,
    }
    return parse_event(RunOptions, {k: v for k, v in given.items() if v is not None})


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load_settings()
    options = _run_options(args)
    _exit_on_sigterm(128 + signal.SIGTERM)  # an interrupted run is a failure
    _progress(f"starting ({'embedded' if args.embedded else 'mode from environment'})")
    with launch.starting(
        settings, embedded=args.embedded, dataset_path=args.dataset, fresh=args.fresh
    ) as start:
        # imported here, while the emulator starts: pandas, boto3, the handlers
        from local_ml_flow import bootstrap
        from local_ml_flow.runner import run_pipeline

        runtime = bootstrap.build(settings, start=start, run_follows=True)
    try:
        where = runtime.endpoint_url or "the configured AWS endpoint"
        _progress(f"mode {runtime.mode.value}: AWS at {where}")
        if runtime.emulator is not None:
            _progress(runtime.emulator.describe())
        started = time.perf_counter()
        result = run_pipeline(runtime.invoker, runtime.runs, settings, options, progress=_progress)
        _progress(f"done in {time.perf_counter() - started:.2f}s")
    finally:
        runtime.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"run_id: {result['run_id']}")
        print(f"model:  {result['model']} on feature set {result['feature_set']}")
        print(f"R2:     {result['r2']:.4f} ({result['score']})")
        print(f"MAE:    {result['mae']:,.0f}")
        print(f"RMSE:   {result['rmse']:,.0f}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from local_ml_flow.api.server import serve

    settings = _load_settings()
    _exit_on_sigterm(0)  # a requested stop of the server is a clean exit
    if args.log_level or args.log_json:
        chosen = {"log_level": args.log_level or settings.log_level}
        chosen["log_json"] = args.log_json or settings.log_json
        settings = settings.model_copy(update=chosen)
    return serve(
        settings,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        embedded=args.embedded,
        dataset_path=args.dataset,
        run_first=args.run_first,
        fresh=args.fresh,
    )


def cmd_reset(args: argparse.Namespace) -> int:
    settings = _load_settings()
    state_dir = args.state_dir or settings.state_dir
    if not args.yes:
        print(
            f"error: this deletes every run, model and dataset stored in {state_dir};"
            " add --yes to confirm",
            file=sys.stderr,
        )
        return 2
    deleted = embedded.reset_state(state_dir)
    if deleted:
        print(f"deleted the embedded state in {state_dir}: {', '.join(p.name for p in deleted)}")
    else:
        print(f"nothing to delete: no embedded state in {state_dir}")
    return 0


def cmd_dataset_fetch(args: argparse.Namespace) -> int:
    settings = _load_settings()
    cache_dir = args.cache_dir or settings.cache_dir
    url = args.url or settings.dataset_url
    _progress(f"fetching {url}")
    path = datasource.fetch(url, args.sha256 or settings.dataset_sha256, cache_dir)
    print(f"dataset verified and cached at {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-ml-flow", description="A local MLOps pipeline on emulated or real AWS."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run ingestion then inference and print the metrics")
    run.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    run.add_argument("--model", choices=ALL_MODEL_KINDS)
    run.add_argument("--feature-set", choices=list(FEATURE_SETS))
    run.add_argument("--test-size", type=float)
    run.add_argument("--random-state", type=int)
    run.add_argument("--dataset", type=Path, help="local housing CSV (embedded mode)")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="serve the API (Swagger at /docs)")
    serve.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--dataset", type=Path, help="local housing CSV (embedded mode)")
    serve.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    serve.add_argument("--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    first = serve.add_mutually_exclusive_group()
    first.add_argument(
        "--run-first",
        dest="run_first",
        action="store_true",
        default=None,
        help="run the pipeline once before serving (default: when the embedded stack has"
        " no model yet)",
    )
    first.add_argument(
        "--no-run", dest="run_first", action="store_false", help="never run before serving"
    )
    serve.set_defaults(func=cmd_serve)

    reset = sub.add_parser(
        "reset", help="delete the embedded stack's stored state (runs, models, datasets)"
    )
    reset.add_argument("--yes", action="store_true", help="confirm the deletion")
    reset.add_argument("--state-dir", type=Path, help="default: LMF_STATE_DIR")
    reset.set_defaults(func=cmd_reset)

    dataset = sub.add_parser("dataset", help="manage the reference dataset")
    dsub = dataset.add_subparsers(dest="dataset_command", required=True)
    fetch = dsub.add_parser("fetch", help="download and verify the reference housing.csv")
    fetch.add_argument("--url")
    fetch.add_argument("--sha256")
    fetch.add_argument("--cache-dir", type=Path)
    fetch.set_defaults(func=cmd_dataset_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LocalMlFlowError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
