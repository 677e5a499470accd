"""The embedded AWS emulator: moto's threaded server on loopback, buckets, dataset, functions.

Functions are registered in the emulator's Lambda API (so ListFunctions shows them) with
a placeholder package; invocations go through the in-process ``LocalInvoker``.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import zipfile
from typing import TYPE_CHECKING

from local_ml_flow import aws
from local_ml_flow.errors import LocalMlFlowError
from local_ml_flow.settings import Settings

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

ROLE_NAME = "local-ml-flow-lambda"
HANDLERS = {
    "ingestion": "local_ml_flow.handlers.ingestion_handler",
    "inference": "local_ml_flow.handlers.inference_handler",
}
_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


class EmulatorError(LocalMlFlowError):
    """The embedded emulator could not start."""


def _placeholder_package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "README.txt",
            "local-ml-flow embedded mode: this function runs in-process (LocalInvoker).\n",
        )
    return buffer.getvalue()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedEmulator:
    """moto's server on ``host:port``; ``start()`` then ``provision()``; ``stop()`` to end."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Start the server in a daemon thread; returns its endpoint URL.

        What moto's ThreadedMotoServer does, with a short poll interval so that ``stop()``
        returns at once instead of after half a second.
        """
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        if not _port_free(self.host, self.port):
            raise EmulatorError(
                f"cannot start the embedded emulator: {self.host}:{self.port} is already in use"
                " (another local-ml-flow or LocalStack?). Stop it or set LMF_EMBEDDED_PORT."
            )
        server = make_server(
            self.host,
            self.port,
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    def provision(self, settings: Settings, dataset: bytes | None) -> None:
        """Create both buckets, upload the dataset if given and absent, register functions."""
        s3 = aws.client("s3", endpoint_url=self.endpoint_url)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in (settings.data_bucket, settings.models_bucket):
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(
            Bucket=settings.data_bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        if dataset is not None:
            listed = s3.list_objects_v2(Bucket=settings.data_bucket, Prefix=settings.dataset_key)
            if not any(o["Key"] == settings.dataset_key for o in listed.get("Contents", [])):
                s3.put_object(
                    Bucket=settings.data_bucket,
                    Key=settings.dataset_key,
                    Body=dataset,
                    ContentType="text/csv",
                )
        self._register_functions(settings)

    def _register_functions(self, settings: Settings) -> None:
        iam = aws.client("iam", endpoint_url=self.endpoint_url)
        try:
            role_arn = iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role_arn = iam.create_role(
                RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(_TRUST_POLICY)
            )["Role"]["Arn"]
        lam = aws.client("lambda", endpoint_url=self.endpoint_url)
        present = {f["FunctionName"] for f in lam.list_functions().get("Functions", [])}
        package = _placeholder_package()
        names = {
            "ingestion": settings.ingestion_function,
            "inference": settings.inference_function,
        }
        for kind, name in names.items():
            if name in present:
                continue
            lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role_arn,
                Handler=HANDLERS[kind],
                Code={"ZipFile": package},
                Timeout=settings.function_timeout_s,
                MemorySize=1024,
                Description=f"local-ml-flow {kind} (embedded: runs in-process)",
                Environment={
                    "Variables": {
                        "LMF_DATA_BUCKET": settings.data_bucket,
                        "LMF_MODELS_BUCKET": settings.models_bucket,
                        "LMF_DATASET_KEY": settings.dataset_key,
                    }
                },
            )
