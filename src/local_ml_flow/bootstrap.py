"""The one place that decides the mode and wires collaborators (store, invoker, clients).

- embedded: start MiniStack (embedded.py) on its state directory, provision it; functions
  run in-process (LocalInvoker) unless ``LMF_INVOKER=lambda`` (MiniStack's Lambda API).
- localstack: ``AWS_ENDPOINT_URL`` is set (boto3 reads it); functions run in LocalStack.
- aws: ``LMF_MODE=aws``; no endpoint, functions run on AWS Lambda.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from local_ml_flow import aws, datasource, handlers
from local_ml_flow.embedded import EmbeddedEmulator
from local_ml_flow.invoke import Handler, Invoker, LambdaInvoker, LocalInvoker
from local_ml_flow.settings import InvokerKind, Mode, Settings
from local_ml_flow.storage import ArtifactStore

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


def resolve_mode(settings: Settings, *, embedded: bool = False) -> Mode:
    """--embedded wins, then LMF_MODE, then an AWS endpoint means LocalStack, else embedded."""
    if embedded:
        return Mode.EMBEDDED
    if settings.mode is not None:
        return settings.mode
    if os.environ.get("AWS_ENDPOINT_URL"):
        return Mode.LOCALSTACK
    return Mode.EMBEDDED


@dataclass
class Runtime:
    """Everything the CLI and the API need, wired for one mode."""

    settings: Settings
    mode: Mode
    store: ArtifactStore
    invoker: Invoker
    lambda_client: LambdaClient
    endpoint_url: str | None
    emulator: EmbeddedEmulator | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()


def local_functions(settings: Settings, store: ArtifactStore) -> dict[str, Handler]:
    """The handler functions by function name, bound to a store (for LocalInvoker)."""
    return {
        settings.ingestion_function: functools.partial(
            handlers.ingestion, store=store, settings=settings
        ),
        settings.inference_function: functools.partial(
            handlers.inference, store=store, settings=settings
        ),
    }


def build(
    settings: Settings,
    *,
    embedded: bool = False,
    dataset_path: Path | None = None,
    fresh: bool = False,
) -> Runtime:
    """Start (embedded) or connect to the AWS side and wire the collaborators.

    ``fresh``: embedded mode starts on an empty state directory.
    """
    mode = resolve_mode(settings, embedded=embedded)
    emulator: EmbeddedEmulator | None = None
    endpoint_url: str | None = None
    if mode is Mode.EMBEDDED:
        path = datasource.resolve(
            dataset_path or settings.dataset_path,
            url=settings.dataset_url,
            expected_sha256=settings.dataset_sha256,
            cache_dir=settings.cache_dir,
        )
        emulator = EmbeddedEmulator(
            settings.embedded_host, settings.embedded_port, settings.state_dir
        )
        endpoint_url = emulator.start(fresh=fresh)
        try:
            emulator.provision(settings, path.read_bytes())
        except Exception:
            emulator.stop()
            raise
    store = handlers.make_store(settings, endpoint_url=endpoint_url)
    lambda_client = aws.client(
        "lambda", endpoint_url=endpoint_url, function_timeout_s=settings.function_timeout_s
    )
    kind = settings.invoker or (InvokerKind.LOCAL if mode is Mode.EMBEDDED else InvokerKind.LAMBDA)
    invoker: Invoker
    if kind is InvokerKind.LOCAL:
        invoker = LocalInvoker(local_functions(settings, store))
    else:
        invoker = LambdaInvoker(lambda_client)
    return Runtime(settings, mode, store, invoker, lambda_client, endpoint_url, emulator)
