"""A fault-injecting HTTP proxy in front of the emulator: cuts chosen S3 writes.

``FaultProxy(target).cut_write(n, where)`` makes the n-th write (PUT/POST/DELETE) whose path
matches ``where`` fail with a 503, and so every retry of it (the client's ``S3_ATTEMPTS``
attempts in all, however other requests interleave with them: writes may run concurrently):
to the client, that write failed for good, while S3 keeps working for everything else and for
what follows (as after a network cut that healed).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from local_ml_flow.aws import S3_ATTEMPTS

_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>cut by the test's fault proxy</Message></Error>"
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultProxy:
    """A forwarding proxy on a free loopback port; ``url`` is its endpoint."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._where: Callable[[str, str], bool] | None = None
        self._countdown = 0
        self._failing: tuple[str, str] | None = None
        self._attempts_left = 0
        self.cut: list[tuple[str, str]] = []  # the writes that were cut
        self.writes: list[tuple[str, str]] = []  # every matching write forwarded
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._should_fail(self.command, self.path):
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_ERROR)))
                    self.end_headers()
                    self.wfile.write(_ERROR)
                    return
                upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def cut_write(self, n: int, where: Callable[[str, str], bool]) -> None:
        """Fail the n-th (0-based) write whose (method, path) matches ``where``."""
        with self._lock:
            self._where, self._countdown, self._failing = where, n, None
            self.cut, self.writes = [], []

    def heal(self) -> None:
        with self._lock:
            self._where, self._failing = None, None

    def _should_fail(self, method: str, path: str) -> bool:
        with self._lock:
            request = (method, path)
            if self._failing is not None and request == self._failing:
                self._attempts_left -= 1
                if self._attempts_left <= 0:  # the client's last attempt: the cut heals
                    self._failing = None
                return True
            if self._where is None or method not in {"PUT", "POST", "DELETE"}:
                return False
            if not self._where(method, path):
                return False
            self.writes.append(request)
            if self.cut:  # one cut per cut_write
                return False
            if self._countdown > 0:
                self._countdown -= 1
                return False
            self._failing, self._attempts_left = request, S3_ATTEMPTS - 1
            self.cut.append(request)
            if self._attempts_left <= 0:
                self._failing = None
            return True

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
