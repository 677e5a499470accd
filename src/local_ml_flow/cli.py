"""``local-ml-flow serve | run | promotions | reproduce | reset | doctor | delete | pin | export |
import | dataset add | list | fetch``.

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
from typing import Any

from pydantic import ValidationError

from local_ml_flow import __version__, datasource, embedded, launch
from local_ml_flow.errors import LocalMlFlowError
from local_ml_flow.events import (
    HOUSING,
    RunOptions,
    TabularOptions,
    parse_event,
    valid_dataset_name,
    valid_run_id,
)
from local_ml_flow.ml.kinds import ALL_MODEL_KINDS
from local_ml_flow.ml.schema import FEATURE_SETS
from local_ml_flow.settings import Settings

FRESH_HELP = "embedded mode: delete the stored state first (runs, models, datasets)"


def _progress(message: str) -> None:
    print(f"==> {message}", flush=True)


def _progress_to_stderr(message: str) -> None:
    """Progress when stdout is for JSON only (``--json``: ``| jq`` reads it whole)."""
    print(f"==> {message}", file=sys.stderr, flush=True)


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


def _run_options(args: argparse.Namespace) -> RunOptions | TabularOptions:
    """The run parameters given on the command line (the others take the configured defaults)."""
    given = {
        "model": args.model,
        "feature_set": args.feature_set,
        "test_size": args.test_size,
        "random_state": args.random_state,
        "promotion": args.promotion,
    }
    if args.name not in (None, HOUSING):
        if args.feature_set is not None:
            raise SystemExit("error: --feature-set is housing's; use --features for a dataset")
        del given["feature_set"]
        if args.features is not None:
            given["features"] = [f.strip() for f in args.features.split(",") if f.strip()]
        return parse_event(TabularOptions, {k: v for k, v in given.items() if v is not None})
    if args.features is not None:
        raise SystemExit(
            "error: --features is for a registered dataset (--name); housing takes --feature-set"
        )
    return parse_event(RunOptions, {k: v for k, v in given.items() if v is not None})


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load_settings()
    options = _run_options(args)
    _exit_on_sigterm(128 + signal.SIGTERM)  # an interrupted run is a failure
    say = _progress_to_stderr if args.json else _progress
    say(f"starting ({'embedded' if args.embedded else 'mode from environment'})")
    named = args.name not in (None, HOUSING)
    if named and args.dataset is not None:
        raise SystemExit(
            "error: --dataset is housing's file; a registered dataset takes new versions with"
            f" `local-ml-flow dataset add {args.name} FILE`"
        )
    with launch.starting(
        settings,
        embedded=args.embedded,
        dataset_path=args.dataset,
        fresh=args.fresh,
        housing=not named,
    ) as start:
        # imported here, while the emulator starts: pandas, boto3, the handlers
        from local_ml_flow import bootstrap, pipeline, registry
        from local_ml_flow.runner import run_pipeline

        runtime = bootstrap.build(settings, start=start, run_follows=True)
    try:
        where = runtime.endpoint_url or "the configured AWS endpoint"
        say(f"mode {runtime.mode.value}: AWS at {where}")
        if runtime.emulator is not None:
            say(runtime.emulator.describe())
        for note in runtime.notes:
            say(note)
        runs = runtime.runs
        if named:
            document = registry.get(runtime.store, args.name)
            assert isinstance(options, TabularOptions)
            pipeline.tabular_parameters(options, document, settings.run_defaults())
            runs = runs.of_dataset(args.name)
        started = time.perf_counter()
        result = run_pipeline(runtime.invoker, runs, settings, options, progress=say, by="cli")
        say(f"done in {time.perf_counter() - started:.2f}s")
    finally:
        runtime.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if "accuracy" in result:
        auc = result.get("roc_auc")
        print(f"run_id:   {result['run_id']}")
        print(f"dataset:  {result.get('dataset', HOUSING)}")
        print(f"model:    {result['model']} on {', '.join(result.get('columns', []))}")
        print(f"accuracy: {result['accuracy']:.4f} ({result['score']})")
        print(f"balanced: {result['balanced_accuracy']:.4f}")
        print(f"F1 macro: {result['f1_macro']:.4f}")
        print(f"log loss: {result['log_loss']:.4f}")
        print(f"ROC AUC:  {auc:.4f}" if auc is not None else "ROC AUC:  undefined")
    else:
        print(f"run_id: {result['run_id']}")
        if named:
            print(f"dataset: {args.name}")
            print(f"model:  {result['model']} on {', '.join(result.get('columns', []))}")
        else:
            print(f"model:  {result['model']} on feature set {result['feature_set']}")
        print(f"R2:     {result['r2']:.4f} ({result['score']})")
        print(f"MAE:    {result['mae']:,.0f}")
        print(f"RMSE:   {result['rmse']:,.0f}")
    if result.get("promoted"):
        print("current: yes (it is served)")
    else:
        print("current: no: the promotion policy kept the current run (see the promotion line)")
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
    if args.state_dir is not None and not args.state_dir.strip():
        print(
            "error: --state-dir is empty: name the state directory, or leave it out",
            file=sys.stderr,
        )
        return 1
    state_dir = Path(args.state_dir) if args.state_dir is not None else settings.state_dir
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


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = _load_settings()
    state_dir = args.state_dir or settings.state_dir
    done = embedded.repair_state(state_dir)
    for line in done:
        print(f"repaired: {line}")
    if not done:
        print(f"the state in {state_dir} is consistent: nothing to repair")
    return 0


def _dataset_runtime(settings: Settings, embedded: bool) -> Any:
    """A runtime for a dataset command: the embedded stack on its state (without the housing
    dataset), or the AWS side the environment names."""
    with launch.starting(settings, embedded=embedded, housing=False) as start:
        from local_ml_flow import bootstrap

        return bootstrap.build(settings, start=start)


def cmd_dataset_add(args: argparse.Namespace) -> int:
    settings = _load_settings()
    path: Path = args.file
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "is not a regular file"
        raise SystemExit(f"error: {path} {what if path.exists() else 'does not exist'}")
    data = launch.read_dataset(path, settings.max_dataset_bytes)
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        from local_ml_flow import registry

        registered = registry.add(
            runtime.store,
            args.name,
            data,
            target=args.target,
            task=args.task,
            replace_schema=args.replace_schema,
            max_bytes=settings.max_dataset_bytes,
            max_rows=settings.max_dataset_rows,
        )
    finally:
        runtime.close()
    document = registered.document
    if args.json:
        print(document.model_dump_json(by_alias=True, indent=2))
        return 0
    verb = "registered" if registered.created else "new version of"
    print(f"{verb} {document.name}: {document.rows:,} rows, {document.task} of {document.target!r}")
    print(f"sha256: {document.sha256}")
    for column in document.schema.columns:
        print(f"  {_column_line(column)}")
    return 0


def _column_line(column: Any) -> str:
    """One schema column for people: name, kind, feature or why not, what was seen."""
    seen = ""
    if column.levels:
        seen = "levels " + ", ".join(column.levels[:8]) + (" …" if len(column.levels) > 8 else "")
    elif column.minimum is not None:
        seen = f"{column.minimum:g} to {column.maximum:g}"
    elif column.true_value:
        seen = f"{column.true_value}/{column.false_value}"
    role = "feature" if column.feature else f"not a feature: {column.reason}"
    missing = f", {column.missing} missing" if column.missing else ""
    return f"{column.name:<24} {column.kind:<12} {seen}{missing} ({role})"


def cmd_dataset_list(args: argparse.Namespace) -> int:
    settings = _load_settings()
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        from local_ml_flow import registry

        broken: list[registry.Unreadable] = []
        documents: list[registry.DatasetDocument] = []
        for found in registry.documents(runtime.store):
            if isinstance(found, registry.Unreadable):
                broken.append(found)
            else:
                documents.append(found)
        current = {d.name: runtime.runs.of_dataset(d.name).latest() for d in documents}
    finally:
        runtime.close()
    if args.json:
        listed = [
            {
                "name": d.name,
                "task": d.task,
                "target": d.target,
                "rows": d.rows,
                "sha256": d.sha256,
                "current_run": current[d.name].run_id if current[d.name] else None,
            }
            for d in documents
        ]
        listed += [{"name": bad.name, "error": bad.error} for bad in broken]
        print(json.dumps({"datasets": listed}, indent=2))
        return 0
    for bad in broken:
        print(f"{bad.name:<20} unreadable: {bad.error}", file=sys.stderr)
    if not documents and not broken:
        print("no registered datasets yet: local-ml-flow dataset add NAME FILE --target COLUMN")
    for d in documents:
        pointer = current[d.name]
        run = f"current run {pointer.run_id} ({pointer.score})" if pointer else "no run yet"
        print(f"{d.name:<20} {d.task:<15} target {d.target!r:<20} {d.rows:>9,} rows  {run}")
    return 0


def _dataset_log(runtime: Any, name: str | None) -> Any:
    """The run log of ``name`` (None: housing); DatasetNotFoundError for an unknown one."""
    from local_ml_flow import registry

    if name is None or name == HOUSING:
        return runtime.runs
    registry.get(runtime.store, registry.check_name(name))
    return runtime.runs.of_dataset(name)


def cmd_promotions(args: argparse.Namespace) -> int:
    settings = _load_settings()
    if args.limit < 1:
        raise SystemExit("error: --limit takes a number of promotions, at least 1")
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        entries = _dataset_log(runtime, args.dataset).promotions(args.limit)
    finally:
        runtime.close()
    if args.json:
        listed = [entry.model_dump(mode="json") for entry in entries]
        print(json.dumps({"promotions": listed}, indent=2))
        return 0
    if not entries:
        print(f"no promotion yet for dataset {args.dataset or HOUSING}")
    for entry in entries:  # newest first
        replaced = f" (replaced {entry.previous_run_id})" if entry.previous_run_id else ""
        rebuilt = " [rebuilt from the pointer]" if not entry.recorded else ""
        print(f"{entry.at}  {entry.run_id}{replaced}  by {entry.by}{rebuilt}")
        print(f"    {entry.reason}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    settings = _load_settings()
    if not valid_run_id(args.run_id):
        raise SystemExit(f"error: {args.run_id[:120]!r} is not a run id")
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        from local_ml_flow import pipeline, reproduce

        limits = pipeline.Limits(settings.max_dataset_bytes, settings.max_dataset_rows)
        result = reproduce.reproduce(_dataset_log(runtime, args.dataset), args.run_id, limits)
    finally:
        runtime.close()
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(f"run {result.run_id} ({result.dataset}): trained again in {result.took_s:.2f}s")
        print(f"identical: {'yes' if result.identical else 'no'}")
        print(f"model sha256: {result.reproduced_model_sha256}")
        if not result.identical:
            print(f"recorded:     {result.recorded_model_sha256}")
        for difference in result.differences:
            print(f"  differs: {difference}")
    return 0 if result.identical else 3


def cmd_dataset_fetch(args: argparse.Namespace) -> int:
    settings = _load_settings()
    cache_dir = args.cache_dir or settings.cache_dir
    url = args.url or settings.dataset_url
    _progress(f"fetching {url}")
    path = datasource.fetch(url, args.sha256 or settings.dataset_sha256, cache_dir)
    print(f"dataset verified and cached at {path}")
    return 0


def _check_dataset(name: str) -> None:
    if name != HOUSING and not valid_dataset_name(name):
        raise SystemExit(f"error: {name[:80]!r} is not a dataset name")


def cmd_delete(args: argparse.Namespace) -> int:
    _check_dataset(args.dataset)
    settings = _load_settings()
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        from local_ml_flow import retention

        freed = retention.delete(runtime.runs.of_dataset(args.dataset), args.run_id)
    finally:
        runtime.close()
    if args.json:
        print(json.dumps(freed.answer(), indent=2))
        return 0
    versions = len(freed.dataset_versions)
    print(
        f"deleted run {', '.join(freed.run_ids)}: {freed.objects} objects, {freed.bytes:,} bytes"
        + (
            f", {versions} dataset version{'s' if versions > 1 else ''} no run uses"
            if versions
            else ""
        )
    )
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    _check_dataset(args.dataset)
    settings = _load_settings()
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        from local_ml_flow import retention

        retention.pin(runtime.runs.of_dataset(args.dataset), args.run_id, not args.off)
    finally:
        runtime.close()
    print(f"run {args.run_id} {'unpinned' if args.off else 'pinned: no deletion removes it'}")
    return 0


DATASET_HELP = (
    "a housing CSV: validated, then the current housing.csv (the one it replaces is archived);"
    " without it, the stored one (on an empty state: LMF_DATASET_PATH or the reference file)"
)


def cmd_export(args: argparse.Namespace) -> int:
    """A succeeded run as one file (the bundle ``POST /pipeline/runs/import`` takes)."""
    settings = _load_settings()
    if not valid_run_id(args.run_id):
        raise SystemExit(f"error: {args.run_id[:120]!r} is not a run id")
    output: Path = args.output
    if output.exists():
        raise SystemExit(f"error: {output} exists: name a new file")
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        from local_ml_flow import bundle, registry

        runs = runtime.runs
        if args.dataset not in (None, HOUSING):
            registry.get(runtime.store, args.dataset)  # DatasetNotFoundError: says so
            runs = runs.of_dataset(args.dataset)
        data = bundle.export(runs, args.run_id, max_dataset_bytes=settings.max_dataset_bytes)
    finally:
        runtime.close()
    with output.open("xb") as file:  # never over a file made meanwhile
        file.write(data)
    print(f"run {args.run_id} exported to {output} ({len(data):,} bytes)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a run's bundle (every sha256 checked, nothing unpickled): listed as succeeded,
    not current."""
    settings = _load_settings()
    path: Path = args.file
    limit = settings.max_upload_bytes
    if not path.is_file():
        raise SystemExit(f"error: {path} {'is not a file' if path.exists() else 'does not exist'}")
    if path.stat().st_size > limit:
        raise SystemExit(f"error: {path} is larger than the limit of {limit} bytes")
    data = path.read_bytes()
    runtime = _dataset_runtime(settings, args.embedded)
    try:
        from local_ml_flow import bundle

        record = bundle.import_bundle(
            runtime.runs, data, max_bytes=limit + settings.max_dataset_bytes
        )
    finally:
        runtime.close()
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    named = "" if record["dataset"] == HOUSING else f" of dataset {record['dataset']}"
    print(f"imported run {record['run_id']}{named}: {record['status']}, not current")
    prefix = "/pipeline" if record["dataset"] == HOUSING else f"/datasets/{record['dataset']}"
    print(f"serve it: POST {prefix}/runs/{record['run_id']}/promote (checks it can be served)")
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
    run.add_argument("--dataset", type=Path, help=DATASET_HELP)
    run.add_argument(
        "--name", help="train on this registered dataset (default: the built-in housing)"
    )
    run.add_argument(
        "--features", help="a registered dataset's feature columns, comma-separated (default: all)"
    )
    run.add_argument(
        "--promotion",
        choices=["better", "always"],
        help="better: the run becomes current only if it scores at least as well as the"
        " current one; always: it does (default: LMF_PROMOTION, else better)",
    )
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="serve the API (Swagger at /docs)")
    serve.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--dataset", type=Path, help=DATASET_HELP)
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

    promotions = sub.add_parser(
        "promotions", help="what served when, and why: a dataset's promotions, newest first"
    )
    promotions.add_argument("--dataset", help="a registered dataset's name (default: housing)")
    promotions.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    promotions.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    promotions.add_argument("--json", action="store_true", help="print them as JSON")
    promotions.set_defaults(func=cmd_promotions)

    again = sub.add_parser(
        "reproduce",
        help="train a run again from its archived dataset, parameters and seed and compare bit"
        " for bit (exit 0: identical; 3: it differs, and how)",
    )
    again.add_argument("run_id", help="the run's id")
    again.add_argument("--dataset", help="the run's registered dataset (default: housing)")
    again.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    again.add_argument("--json", action="store_true", help="print the result as JSON")
    again.set_defaults(func=cmd_reproduce)

    reset = sub.add_parser(
        "reset", help="delete the embedded stack's stored state (runs, models, datasets)"
    )
    reset.add_argument("--yes", action="store_true", help="confirm the deletion")
    reset.add_argument("--state-dir", help="default: LMF_STATE_DIR")
    reset.set_defaults(func=cmd_reset)

    doctor = sub.add_parser(
        "doctor",
        help="check and repair a stopped embedded state (half-done writes after a crash, files"
        " changed by hand); says what it did, deletes nothing stored",
    )
    doctor.add_argument("--state-dir", type=Path, help="default: LMF_STATE_DIR")
    doctor.set_defaults(func=cmd_doctor)

    delete = sub.add_parser(
        "delete",
        help="delete a run (not the current one, one in flight or a pinned one): its files in"
        " both buckets and the dataset versions no remaining run was trained on",
    )
    delete.add_argument("run_id")
    pin = sub.add_parser("pin", help="pin a run: no deletion (asked, or LMF_KEEP_RUNS) removes it")
    pin.add_argument("run_id")
    pin.add_argument("--off", action="store_true", help="unpin it")
    for command, func in ((delete, cmd_delete), (pin, cmd_pin)):
        command.add_argument(
            "--dataset", default=HOUSING, help="the run's dataset (default: housing)"
        )
        command.add_argument(
            "--embedded", action="store_true", help="use the embedded AWS emulator"
        )
        command.set_defaults(func=func)
    delete.add_argument("--json", action="store_true", help="print what was freed as JSON")
    export = sub.add_parser("export", help="write a succeeded run to one file (a bundle)")
    export.add_argument("run_id", help="the run's id")
    export.add_argument("-o", "--output", type=Path, required=True, help="the file to write")
    export.add_argument("--dataset", help="the run's registered dataset (default: housing)")
    export.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    export.set_defaults(func=cmd_export)
    imported = sub.add_parser(
        "import", help="import a run's bundle (every sha256 checked): succeeded, not current"
    )
    imported.add_argument("file", type=Path, help="a bundle written by `export`")
    imported.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    imported.add_argument("--json", action="store_true", help="print the run's record as JSON")
    imported.set_defaults(func=cmd_import)

    dataset = sub.add_parser("dataset", help="register your own datasets; fetch the reference one")
    dsub = dataset.add_subparsers(dest="dataset_command", required=True)
    add = dsub.add_parser(
        "add",
        help="register a CSV as a dataset, or add a new version of it (checked against its schema)",
    )
    add.add_argument("name", help="the dataset's name: 1-64 characters of a-z, 0-9, '_' and '-'")
    add.add_argument("file", type=Path, help="the CSV file (a header line, then the rows)")
    add.add_argument("--target", help="the column to predict (needed for a new dataset)")
    add.add_argument(
        "--task", choices=["regression", "classification"], help="default: inferred from the target"
    )
    add.add_argument(
        "--replace-schema",
        action="store_true",
        help="accept a changed schema on purpose (it is inferred again from this file)",
    )
    add.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    add.add_argument("--json", action="store_true", help="print the dataset document as JSON")
    add.set_defaults(func=cmd_dataset_add)
    listing = dsub.add_parser("list", help="the registered datasets and their current runs")
    listing.add_argument("--embedded", action="store_true", help="use the embedded AWS emulator")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(func=cmd_dataset_list)
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
