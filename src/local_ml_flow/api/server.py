"""``local-ml-flow serve``: wire the runtime, optionally run once, serve with uvicorn."""

from __future__ import annotations

import gc
import socket
from pathlib import Path

import uvicorn

from local_ml_flow import bootstrap
from local_ml_flow.api import access_log, limits
from local_ml_flow.api.app import create_app
from local_ml_flow.errors import ConfigurationError, LocalMlFlowError
from local_ml_flow.events import RunOptions
from local_ml_flow.runner import run_pipeline
from local_ml_flow.settings import Mode, Settings

KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _check_port_free(host: str, port: int) -> None:
    """ConfigurationError if ``host:port`` cannot be bound (uvicorn binds the same way)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc} (another local-ml-flow"
                " or another server there?). Stop it, or pick another port: --port or"
                " LMF_API_PORT."
            ) from None


def _first_run(runtime: bootstrap.Runtime, settings: Settings) -> None:
    """Run the pipeline once before serving; a failure is said, and the API starts anyway
    (to upload another dataset, or to look at what is stored)."""
    try:
        result = run_pipeline(  # `local-ml-flow serve`'s first run
            runtime.invoker, runtime.runs, settings, RunOptions(), progress=_say, by="cli"
        )
    except LocalMlFlowError as exc:
        _say(
            f"the first run failed: {getattr(exc, 'error_message', exc.message)}. The API starts"
            " anyway: upload a dataset (PUT /bucket/dataset, or start again with --dataset FILE)"
            " and start a run from the dashboard or POST /pipeline/runs"
        )
        return
    _say(f"run {result['run_id']}: R² {result['r2']:.4f} ({result['score']})")


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    embedded: bool = False,
    dataset_path: Path | None = None,
    run_first: bool | None = None,
    fresh: bool = False,
) -> int:
    """Serve until interrupted; returns the process exit code.

    ``run_first`` None: run the pipeline once when the embedded stack has no model yet.
    """
    access_log.configure(settings.log_level, settings.log_json)
    _check_port_free(host, port)  # before the emulator starts and a model is trained
    # A run surely follows when asked for, or on a fresh state: what it imports is then
    # imported while the emulator starts.
    runtime = bootstrap.build(
        settings,
        embedded=embedded,
        dataset_path=dataset_path,
        fresh=fresh,
        run_follows=run_first is True or (run_first is None and fresh),
    )
    try:
        where = runtime.endpoint_url or "the configured AWS endpoint"
        _say(f"mode {runtime.mode.value}: AWS at {where}")
        if runtime.emulator is not None:
            _say(runtime.emulator.describe())
        for note in runtime.notes:
            _say(note)
        if run_first is None:  # no model yet, or one trained on another dataset than --dataset
            run_first = runtime.mode is Mode.EMBEDDED and (
                runtime.dataset_changed or runtime.runs.latest() is None
            )
        if run_first:
            _first_run(runtime, settings)
        base = f"http://{'localhost' if host in {'0.0.0.0', '127.0.0.1'} else host}:{port}"
        _say(f"API on {base}  (Swagger UI: {base}/docs)")
        _say(f"dashboard: {base}/ui")
        _say(f"score: {base}/result/{settings.data_bucket}")
        if runtime.emulator is not None:
            runtime.emulator.supervise(settings)  # restarted on the same state if it dies
        app = create_app(runtime)
        # Start-up objects (libraries, the emulator) live as long as the process: keep the
        # garbage collector from scanning them again and again (long pauses under load).
        gc.collect()
        gc.freeze()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            log_config=None,  # access_log.configure did it; our middleware logs requests
            access_log=False,
            http=limits.header_deadline_protocol(settings.header_timeout_s),
            timeout_keep_alive=KEEP_ALIVE_S,
        )
    finally:
        runtime.close()
    return 0
