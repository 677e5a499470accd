"""Request guards: local Host names only, no cross-site writes, declared content types,
body limits enforced while the body streams in, and a shared, deadline-bound call for /ready.

Cross-site policy. A web page can make a browser send a "simple" request to the API without
asking (no CORS preflight): GET, or POST with no body or a ``text/plain``, form or multipart
body. So:

- every write endpoint accepts only its declared content type (415 otherwise), so a
  ``text/plain`` or form POST never reaches a route;
- ``POST /pipeline/runs`` with no body and no content type stays allowed (the original
  ``curl -X POST`` flow). A page can send that too, but browsers attach ``Origin`` to every
  POST (Fetch standard), so a write whose ``Origin`` is not the server's own, or whose
  ``Sec-Fetch-Site`` says cross-site or same-site, is refused (403);
- the Host header must be a local name (or listed in ``LMF_ALLOWED_HOSTS``), else 400: a
  DNS-rebinding page cannot talk to the API under its own name.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local_ml_flow.api import errors

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies of endpoints that are neither /predict nor the dataset upload: run parameters.
SMALL_BODY_BYTES = 64 * 1024
# Multipart framing around the uploaded file (boundaries, part headers).
UPLOAD_FRAMING_BYTES = 64 * 1024
JSON = "application/json"


@dataclass(frozen=True)
class WriteRoute:
    """What a write endpoint accepts: its media types; ``empty`` allows no body at all."""

    media_types: tuple[str, ...]
    empty: bool = False


WRITE_ROUTES: dict[tuple[str, str], WriteRoute] = {
    ("POST", "/predict"): WriteRoute((JSON,)),
    ("POST", "/pipeline/runs"): WriteRoute((JSON,), empty=True),
    ("PUT", "/bucket/dataset"): WriteRoute(("multipart/form-data",)),
    ("POST", "/pipeline/runs/import"): WriteRoute(("multipart/form-data",)),
}
# A registered dataset's write endpoints: (method, what follows /datasets/<name>) -> route.
DATASET_WRITE_ROUTES: dict[tuple[str, str], WriteRoute] = {
    ("PUT", ""): WriteRoute(("multipart/form-data",)),
    ("POST", "/runs"): WriteRoute((JSON,), empty=True),
    ("POST", "/predict"): WriteRoute((JSON,)),
}
_DATASET_PATH = re.compile(r"/datasets/[^/]+(/runs|/predict)?")


def write_route(method: str, path: str) -> WriteRoute | None:
    """What a write endpoint accepts (None: any body, checked by the route itself)."""
    route = WRITE_ROUTES.get((method, path))
    if route is not None:
        return route
    match = _DATASET_PATH.fullmatch(path)
    return DATASET_WRITE_ROUTES.get((method, match.group(1) or "")) if match else None


class GuardError(HTTPException):
    """A request refused while its body streams in (413 too large, 408 too slow)."""

    def __init__(self, status_code: int, error_type: str, message: str) -> None:
        super().__init__(status_code, message)
        self.error_type = error_type


async def _guard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GuardError)
    return errors.error_response(exc.status_code, exc.error_type, str(exc.detail))


def install(app: FastAPI) -> None:
    """Add the request guard (outermost) and the handler of its streaming errors."""
    app.add_exception_handler(GuardError, _guard_error)
    app.add_middleware(RequestGuard, app_state=app.state)


def host_name(value: str) -> str:
    """The name in a Host header or URL authority: no port, no brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name, sep, port = value.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else value


def body_limit(method: str, path: str, *, predict_bytes: int, upload_bytes: int) -> int:
    """The largest body a request may carry."""
    if (method, path) == ("POST", "/predict"):
        return predict_bytes
    if (method, path) in (("PUT", "/bucket/dataset"), ("POST", "/pipeline/runs/import")):
        return upload_bytes + UPLOAD_FRAMING_BYTES
    if method in ("PUT", "POST") and path.startswith("/datasets/"):
        match = _DATASET_PATH.fullmatch(path)
        if match and method == "PUT" and match.group(1) is None:
            return upload_bytes + UPLOAD_FRAMING_BYTES
        if match and method == "POST" and match.group(1) == "/predict":
            return predict_bytes
    return SMALL_BODY_BYTES


class RequestGuard:
    """Plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task group per request).

    In order: Host (400), Origin / Sec-Fetch-Site on writes (403), content type on writes
    (415), declared length (413), then the body is counted as it arrives: past the limit
    the request ends with 413 (chunked bodies included) and nothing more is read; a body
    that stalls longer than the body timeout, or is not complete within the body deadline
    (counted from the request head), ends with 408.
    """

    def __init__(self, app: ASGIApp, app_state: State) -> None:
        self.app = app
        self.state = app_state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.state.runtime.settings
        headers: dict[bytes, bytes] = dict(scope["headers"])
        method: str = scope["method"]
        refusal = _refusal(method, scope["path"], headers, settings.allowed_hosts)
        if refusal is None:
            limit = body_limit(
                method,
                scope["path"],
                predict_bytes=settings.max_predict_bytes,
                upload_bytes=settings.max_upload_bytes,
            )
            length = headers.get(b"content-length", b"")
            if length.isdigit() and int(length) > limit:
                refusal = (
                    413,
                    "PayloadTooLargeError",
                    f"request body of {int(length)} bytes is above the limit of {limit} bytes",
                )
        if refusal is not None:
            await errors.error_response(*refusal)(scope, receive, send)
            return
        counted = _counted(receive, limit, settings.body_timeout_s, settings.body_deadline_s)
        await self.app(scope, counted, send)


def _refusal(
    method: str, path: str, headers: dict[bytes, bytes], allowed_hosts: list[str]
) -> tuple[int, str, str] | None:
    host = headers.get(b"host", b"").decode("latin-1")
    name = host_name(host)
    if name not in LOCAL_HOSTS and name not in allowed_hosts and "*" not in allowed_hosts:
        return (
            400,
            "InvalidHostError",
            f"Host {host!r} is not served here: use localhost or 127.0.0.1, or add the name"
            " to LMF_ALLOWED_HOSTS",
        )
    if method not in UNSAFE_METHODS:
        return None
    origin = headers.get(b"origin")
    if origin is not None:
        source = origin.decode("latin-1").strip().lower()
        if source == "null" or urlsplit(source).netloc != host.strip().lower():
            return (
                403,
                "CrossSiteRequestError",
                f"a {method} from origin {source!r} is refused: writes come from this"
                " server's own pages or from clients that are not browsers",
            )
    if headers.get(b"sec-fetch-site", b"").lower() in (b"cross-site", b"same-site"):
        return 403, "CrossSiteRequestError", f"a cross-site {method} is refused"
    route = write_route(method, path)
    if route is None:
        return None
    content_type = headers.get(b"content-type")
    if content_type is None:
        no_body = b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") in (
            b"0",
            b"",
        )
        if route.empty and no_body:
            return None
        media = "none"
    else:
        media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        if media in route.media_types:
            return None
    expected = " or ".join(route.media_types) + (" (or no body)" if route.empty else "")
    return (
        415,
        "UnsupportedMediaTypeError",
        f"{method} {path} takes Content-Type {expected}, not {media}",
    )


def _counted(receive: Receive, limit: int, timeout_s: float, deadline_s: float) -> Receive:
    """``receive`` that counts body bytes (413 past ``limit``), bounds each wait to
    ``timeout_s`` and the whole body to ``deadline_s`` from now (408)."""
    received = 0
    done = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s

    async def wrapped() -> Message:
        nonlocal received, done
        if done:  # the body is complete: what follows is a disconnect, wait for it freely
            return await receive()
        stall = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(min(stall, deadline)):  # no task, unlike wait_for
                message = await receive()
        except TimeoutError:
            if stall <= deadline:
                why = f"no request body data for {timeout_s:g} s"
            else:
                why = f"the request body did not arrive in full within {deadline_s:g} s"
            raise GuardError(408, "RequestTimeoutError", why) from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise GuardError(
                    413,
                    "PayloadTooLargeError",
                    f"request body is above the limit of {limit} bytes",
                )
            done = not message.get("more_body", False)
        else:
            done = True
        return message

    return wrapped


T = TypeVar("T")


class SharedCall(Generic[T]):
    """One blocking call shared by concurrent callers, its answer reused for ``ttl_s``.

    At most one thread runs ``call`` at any time, however many requests ask (a hung endpoint
    cannot starve the thread pool); each caller waits at most ``deadline_s`` and then gets
    ``on_timeout()`` while the call goes on and its answer serves the next callers.
    """

    def __init__(
        self, call: Callable[[], T], *, ttl_s: float, deadline_s: float, on_timeout: Callable[[], T]
    ) -> None:
        self._call = call
        self.ttl_s = ttl_s
        self.deadline_s = deadline_s
        self._on_timeout = on_timeout
        self._lock = threading.Lock()
        self._running: Future[T] | None = None
        self._answer: tuple[float, T] | None = None
        self.calls = 0

    def _start(self) -> Future[T]:
        with self._lock:
            if self._running is not None:
                return self._running
            future: Future[T] = Future()
            self._running = future
        self.calls += 1
        threading.Thread(target=self._run, args=(future,), daemon=True).start()
        return future

    def _run(self, future: Future[T]) -> None:
        try:
            value = self._call()
        except BaseException as exc:
            with self._lock:
                self._running = None
            future.set_exception(exc)
            return
        with self._lock:
            self._answer = (time.monotonic(), value)
            self._running = None
        future.set_result(value)

    async def get(self) -> T:
        answer = self._answer
        if answer is not None and time.monotonic() - answer[0] < self.ttl_s:
            return answer[1]
        future = asyncio.wrap_future(self._start())
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.deadline_s)
        except TimeoutError:
            return self._on_timeout()


def header_deadline_protocol(timeout_s: float) -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol with a deadline on the request head: a connection that
    sends nothing, or its headers too slowly, is closed after ``timeout_s`` (uvicorn's own
    keep-alive timeout only covers the wait between two requests). "auto" without httptools.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return "auto"

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

    return HeaderDeadlineProtocol
