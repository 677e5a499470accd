"""Run MiniStack behind a guard that refuses browser-originated requests (a standalone script).

``python emulator_main.py`` (any interpreter with ``ministack`` installed; this file imports
only the standard library and ministack, so the Terraform tests run it on a separate
CPython 3.12) serves MiniStack exactly as ``python -m ministack`` does, with one ASGI
layer in front of it. MiniStack answers every request with
``Access-Control-Allow-Origin: *`` and serves ``/_ministack/reset``: a web page in the
user's browser could read, overwrite or wipe the local buckets. The guard refuses, with
403 and before MiniStack sees it, any request that

- carries an ``Origin`` header or a ``Sec-Fetch-*`` header (browsers send them; the AWS
  SDKs, the AWS CLI and Terraform never do), or
- names a host other than loopback (``127.0.0.1``, ``localhost``, ``*.localhost``, ``[::1]``):
  a DNS-rebinding page reaches 127.0.0.1 under its own host name.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def _host_is_loopback(host: str) -> bool:
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:4566
        name = name[: name.find("]") + 1]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    return name in LOOPBACK_HOSTS or name.endswith(".localhost")


def refusal(headers: dict[str, str]) -> str | None:
    """Why a request with these (lower-case) headers is refused, or None to let it through."""
    if "origin" in headers:
        return "requests from a web page (Origin header) are refused"
    if any(name.startswith("sec-fetch-") for name in headers):
        return "requests from a web browser (Sec-Fetch headers) are refused"
    host = headers.get("host")
    if host is not None and not _host_is_loopback(host):
        return f"host {host!r} is not loopback"
    return None


def guard(app: App) -> App:
    """``app`` behind the browser/host check (HTTP only; lifespan passes through)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in scope.get("headers", [])
            }
            reason = refusal(headers)
            if reason is not None:
                body = json.dumps(
                    {"__type": "AccessDeniedException", "message": f"local emulator: {reason}"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    """Install the guard as MiniStack's app, then run MiniStack's own main()."""
    import ministack.app

    ministack.app.app = guard(ministack.app.app)
    ministack.app.main()


if __name__ == "__main__":
    main()
