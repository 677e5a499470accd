"""HEAD and OPTIONS on every route: HEAD is GET without the body, OPTIONS names the methods a
path takes (``Allow``), with no CORS headers (a page of another origin is still refused)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Methods:
    """Plain ASGI middleware answering HEAD (as GET, body dropped) and OPTIONS (204 + Allow)."""

    def __init__(self, app: ASGIApp, routes: list[tuple[re.Pattern[str], frozenset[str]]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            await self.app({**scope, "method": "GET"}, receive, _bodiless(send))
            return
        allowed = self._allowed(scope)
        if not allowed:  # no such path: the app's own 404
            await self.app(scope, receive, send)
            return
        methods = ", ".join(sorted(allowed | {"OPTIONS"}))
        headers = [(b"allow", methods.encode()), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _allowed(self, scope: Scope) -> set[str]:
        allowed: set[str] = set()
        for pattern, methods in self.routes:
            if pattern.match(scope["path"]):
                allowed |= methods
        if "GET" in allowed:
            allowed.add("HEAD")
        return allowed


def _bodiless(send: Send) -> Send:
    """``send`` that drops the body (its headers, Content-Length included, are kept)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            await send(message)
        elif message["type"] == "http.response.body":
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})
        else:
            await send(message)

    return sending


def _routes(
    app: FastAPI, routers: Iterable[APIRouter]
) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each route's path pattern and methods (a mount, e.g. the static files: GET and HEAD)."""
    found: list[tuple[re.Pattern[str], frozenset[str]]] = []
    for route in [*app.router.routes, *(r for router in routers for r in router.routes)]:
        if isinstance(route, Mount):
            found.append((re.compile(re.escape(route.path) + "/"), frozenset({"GET", "HEAD"})))
        else:
            pattern, methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
            if pattern is not None and methods:
                found.append((pattern, frozenset(methods)))
    return found


def install(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Answer HEAD and OPTIONS for the app's routes and those of ``routers`` (its own)."""
    app.add_middleware(Methods, routes=_routes(app, routers))
