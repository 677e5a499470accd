"""Cold start: process start to the first embedded run done, and the packaged handlers' import.

    .venv/bin/python benchmarks/cold.py                        # this checkout
    .venv/bin/python benchmarks/cold.py --before fc28ab9       # interleaved A B A B
    .venv/bin/python benchmarks/cold.py --zip lambdas/dist/local-ml-flow-lambda.zip
    .venv/bin/python benchmarks/cold.py --no-runs --build     # both zips, interleaved

First embedded run: ``local-ml-flow run --embedded --dataset ...`` (the user's command that
starts from nothing: a fresh state directory, the emulator started and provisioned, the
first model trained and scored), run as ``python -m local_ml_flow.cli`` in a fresh process;
prints the time from process start to the line ``==> done`` (the first run done: trained,
scored, promoted) and to the process exit (the emulator stopped, its state saved). The
process runs in the user's environment: a venv with the runtime dependencies only, as
``uv.lock`` says (what ``./bin/start_all.sh`` makes on a fresh clone), kept in
``.lmf/bench-runtime-venv``; not the dev venv, whose test tools scikit-learn imports when they
are installed (pytest, and rich through import-linter: about 0.25 s). ``--python PY`` runs
another interpreter (``--python .venv/bin/python``: the dev venv). With
``--before REV`` that commit's ``src/`` runs in alternating processes (A B A B), so a loaded
machine slows both alike; figures are medians. The bytecode cache is allowed (as on a user's
machine: ``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment) and one
unmeasured run per tree fills it first.

Packaged handlers (``--zip``, repeatable, or ``--build`` to build both variants with
bin/build_lambdas.sh: ``LMF_LAMBDA_BYTECODE=0`` and the default, which ships bytecode): each zip
unpacked into a read-only tree (``chmod -R a-w``, as Lambda's ``/var/task``), then in fresh
processes of CPython 3.12 (``--python312``, default the Terraform tests' ``.lmf/py312-ministack``,
else ``python3.12``) run ``-I -B`` (nothing written, as on Lambda), the zips taking turns
(A B A B): ``import local_ml_flow.handlers`` (``-X importtime``'s total) and then what a first
run imports after the handlers (its first invocation); medians. A zip without bytecode compiles
every module it imports, on every cold start.

Prints figures; asserts nothing. Targets (issues 13 and 24): first embedded run <= 2.5 s from
process start; handler import <= 1.0 s on CPython 3.12 in a read-only tree, the zip <= 250 MB
unzipped.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common import export, free_port

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared/data/housing.csv"


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return {**env, **extra}


def runtime_python() -> str:
    """The python of a venv with the runtime dependencies only, as uv.lock says (synced with
    the uv ``bin/lib/venv.sh`` finds; the tree under test comes from PYTHONPATH)."""
    venv = ROOT / ".lmf/bench-runtime-venv"
    sync = (
        '. bin/lib/venv.sh && find_uv >&2 && UV_PROJECT_ENVIRONMENT="$1" "$UV" sync --frozen'
        ' --no-install-project --quiet --python "$2"'
    )
    subprocess.run(["bash", "-c", sync, "-", str(venv), sys.executable], cwd=ROOT, check=True)
    return str(venv / "bin/python")


def first_run(python: str, src: Path, dataset: Path) -> tuple[float, float]:
    """(process start -> ``==> done``, process start -> exit) of one ``run --embedded``."""
    with tempfile.TemporaryDirectory(prefix="lmf-cold-state-") as state:
        env = child_env(
            PYTHONPATH=str(src), LMF_EMBEDDED_PORT=str(free_port()), LMF_STATE_DIR=state
        )
        command = [python, "-m", "local_ml_flow.cli", "run", "--embedded"]
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--dataset", str(dataset)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            text=True,
        )
        assert process.stdout is not None
        done = None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if done is None and line.startswith("==> done"):
                done = time.perf_counter() - started
        code = process.wait()
        exited = time.perf_counter() - started
    if code != 0 or done is None:
        raise SystemExit(f"local-ml-flow run failed ({src}):\n{''.join(lines)[-3000:]}")
    return done, exited


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cold_runs(args: argparse.Namespace, workdir: Path) -> None:
    trees = {"after": ROOT / "src"}
    if args.before:
        trees = {"before": export(args.before, workdir / "before"), **trees}
    # a given interpreter as the caller meant it (the runs' cwd is the checkout's root)
    python = (
        (shutil.which(args.python) or str(Path(args.python).absolute()))
        if args.python
        else runtime_python()
    )
    for src in trees.values():
        first_run(python, src, args.dataset)  # unmeasured: fills the bytecode cache
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    load = [load_average()]
    for _ in range(args.rounds):  # A B A B
        for name, src in trees.items():
            results[name].append(first_run(python, src, args.dataset))
    load.append(load_average())
    print(
        f"first embedded run, `local-ml-flow run --embedded` on a fresh state, {args.rounds}"
        f" rounds interleaved (load average {load[0]} -> {load[1]}), with {python}:"
    )
    for name, figures in results.items():
        label = f"{name} ({args.before})" if name == "before" else name
        done = statistics.median(f[0] for f in figures)
        exited = statistics.median(f[1] for f in figures)
        print(
            f"  {label:<18} process start to first run done: median {done:.2f} s"
            f" (min {min(f[0] for f in figures):.2f}); to exit {exited:.2f} s"
        )
    if "before" in results:  # paired by round: both sides of a round met the same load
        pairs = list(zip(results["before"], results["after"], strict=True))
        faster = sum(after[0] < before[0] for before, after in pairs)
        diffs = sorted(after[0] - before[0] for before, after in pairs)
        print(
            f"  after - before, round by round: median {statistics.median(diffs):+.2f} s;"
            f" after faster in {faster} of {len(pairs)} rounds"
        )
    print("  target: process start to first run done <= 2.5 s")


def find_python312(given: str | None) -> str | None:
    candidates = [given] if given else []
    candidates += [str(ROOT / ".lmf/py312-ministack/bin/python"), "python3.12"]
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path:
            return path
    return None


def children_cpu() -> float:
    """CPU seconds (user + system) of the children reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_figures(python: str, tree: Path, *flags: str) -> tuple[float, float]:
    """(``-X importtime``'s total for the handlers, CPU seconds of the whole process)."""
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); import local_ml_flow.handlers"
    cpu = children_cpu()
    done = subprocess.run(
        [python, "-I", *flags, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    cpu = children_cpu() - cpu
    last = [line for line in done.stderr.splitlines() if line.endswith("local_ml_flow.handlers")]
    return int(last[-1].split("|")[1]) / 1e6, cpu


# What the functions import on their first run, after the handlers (model.py, storage.py).
FIRST_RUN_IMPORTS = "sklearn.linear_model, sklearn.ensemble, skops.io, joblib"


def first_run_imports_seconds(python: str, tree: Path, *flags: str) -> float:
    """Seconds to import, after the handlers, what a first ingestion and inference import."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(tree)!r}); import local_ml_flow.handlers\n"
        f"start = time.perf_counter(); import {FIRST_RUN_IMPORTS}\n"
        "print(time.perf_counter() - start)"
    )
    done = subprocess.run(
        [python, "-I", *flags, "-c", code], capture_output=True, text=True, check=True, cwd=tree
    )
    return float(done.stdout)


def read_only(tree: Path) -> None:
    """``chmod -R a-w`` (as Lambda's /var/task; root ignores it, -B does not)."""
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def writable(tree: Path) -> None:
    """Undo `read_only` on the folders (so that the tree can be removed)."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def build_both(workdir: Path) -> dict[str, Path]:
    """Both zips of bin/build_lambdas.sh: {label: path}."""
    zips = {}
    for label, value in (("LMF_LAMBDA_BYTECODE=0", "0"), ("default (bytecode)", None)):
        zip_path = workdir / f"lambda-{value or 'default'}.zip"
        env = {**os.environ, "LMF_LAMBDA_BUILD_DIR": str(workdir / "build")}
        env.pop("LMF_LAMBDA_BYTECODE", None)
        if value is not None:
            env["LMF_LAMBDA_BYTECODE"] = value
        build = [str(ROOT / "bin/build_lambdas.sh"), str(zip_path)]
        subprocess.run(["bash", *build], check=True, stdout=subprocess.DEVNULL, env=env)
        zips[label] = zip_path
    return zips


def packaged_import(args: argparse.Namespace, workdir: Path) -> None:
    python = find_python312(args.python312)
    if python is None:
        print("packaged handlers: NOT MEASURED, no CPython 3.12 (--python312)")
        return
    zips = build_both(workdir) if args.build else {str(z): z for z in args.zip or []}
    if not zips:
        return
    trees, sizes = {}, {}
    for n, (label, zip_path) in enumerate(zips.items()):
        trees[label] = workdir / f"task-{n}"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(trees[label])
            unzipped = sum(info.file_size for info in zf.infolist())
            pyc = sum(info.filename.endswith(".pyc") for info in zf.infolist())
        sizes[label] = (
            f"{zip_path.stat().st_size / 2**20:.1f} MB zipped, {unzipped / 2**20:.1f} MB"
            f" unzipped, {pyc} .pyc"
        )
        read_only(trees[label])
    imports: dict[str, list[float]] = {label: [] for label in trees}
    cpus: dict[str, list[float]] = {label: [] for label in trees}
    first_runs: dict[str, list[float]] = {label: [] for label in trees}
    load = [load_average()]
    try:
        for _ in range(args.imports):  # A B A B
            for label, tree in trees.items():
                seconds, cpu = import_figures(python, tree, "-B")
                imports[label].append(seconds)
                cpus[label].append(cpu)
                first_runs[label].append(first_run_imports_seconds(python, tree, "-B"))
    finally:
        for tree in trees.values():
            writable(tree)
    load.append(load_average())
    print(
        f"packaged handlers on CPython 3.12 ({python}), read-only tree, -I -B (as /var/task),"
        f" {args.imports} fresh processes each, interleaved (load average {load[0]} ->"
        f" {load[1]}):"
    )
    for label in trees:
        print(f"  {label} ({sizes[label]}):")
        print(
            f"    import local_ml_flow.handlers: median {statistics.median(imports[label]):.2f} s"
            f" (min {min(imports[label]):.2f}); the process's CPU time (user + system, what"
            f" a loaded machine does not stretch): median {statistics.median(cpus[label]):.2f} s"
        )
        print(
            f"    then a first run's imports ({FIRST_RUN_IMPORTS}):"
            f" median {statistics.median(first_runs[label]):.2f} s"
            f" (min {min(first_runs[label]):.2f})"
        )
    print("  target: handler import <= 1.0 s; unzipped <= 250 MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--before", help="a commit to compare with (interleaved)")
    parser.add_argument("--rounds", type=int, default=5, help="runs per tree")
    parser.add_argument(
        "--python",
        help="the interpreter of the runs (default: a runtime-only venv, .lmf/bench-runtime-venv)",
    )
    parser.add_argument(
        "--zip",
        type=Path,
        action="append",
        help="a built Lambda zip: time its handlers' import (repeat it to compare zips)",
    )
    parser.add_argument(
        "--build", action="store_true", help="build both zips first (without and with bytecode)"
    )
    parser.add_argument("--python312", help="CPython 3.12 for the packaged import")
    parser.add_argument("--imports", type=int, default=7, help="fresh imports per zip")
    parser.add_argument("--no-runs", action="store_true", help="only the packaged import")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lmf-cold-"))
    try:
        if not args.no_runs:
            cold_runs(args, workdir)
        packaged_import(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
