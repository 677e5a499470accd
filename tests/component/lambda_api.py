"""A minimal Lambda Invoke API over HTTP, for testing LambdaInvoker without Docker.

Running Lambda code needs a container runtime (LocalStack, AWS), which these machines
lack: this is the one true boundary we fake. It answers exactly like the Lambda API:
200 + ``X-Amz-Function-Error`` + ``{"errorType", "errorMessage"}`` when a handler raises,
404 ``ResourceNotFoundException`` for an unknown function.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[Any, Any], Any]
_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


class LambdaApi:
    """Serve ``functions`` on 127.0.0.1 (free port) until ``stop()``."""

    def __init__(self, functions: Mapping[str, Handler]) -> None:
        self.functions = dict(functions)
        self.calls: list[tuple[str, Any]] = []
        api = self

        class RequestHandler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                match = _PATH.match(self.path.split("?")[0])
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                name = match["name"] if match else ""
                handler = api.functions.get(name)
                if handler is None:
                    self._send(
                        404,
                        {"Type": "User", "Message": f"Function not found: {name}"},
                        {"x-amzn-ErrorType": "ResourceNotFoundException"},
                    )
                    return
                api.calls.append((name, payload))
                try:
                    result = handler(payload, None)
                except Exception as exc:
                    body = {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    }
                    self._send(200, body, {"X-Amz-Function-Error": "Unhandled"})
                    return
                self._send(200, result, {"X-Amz-Executed-Version": "$LATEST"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
