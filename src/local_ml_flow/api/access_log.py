"""Server logs: one access line per request, the log format (text or JSON lines), the level."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("local_ml_flow.access")

_STANDARD = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ extras, traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str = "INFO", as_json: bool = False) -> None:
    """Send the project's and uvicorn's logs to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    for name in ("local_ml_flow", "uvicorn"):
        named = logging.getLogger(name)
        named.handlers[:] = [handler]
        named.setLevel(level)
        named.propagate = False


def printable(text: str) -> str:
    """``text`` with every character outside printable ASCII percent-escaped (its UTF-8 bytes):
    a decoded path holding ``%0A`` cannot start a forged log line."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        c if c.isascii() and c.isprintable() else "".join(f"%{b:02X}" for b in c.encode())
        for c in text
    )


class AccessLog:
    """Plain ASGI middleware: ``METHOD path?query status bytes ms client`` per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 500, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            took_ms = (time.perf_counter() - started) * 1000
            query = scope.get("query_string", b"").decode("latin-1")
            path = printable(scope["path"] + (f"?{query}" if query else ""))
            client = scope.get("client") or ("-", 0)
            logger.info(
                "%s %s %d %dB %.1fms %s",
                scope["method"],
                path,
                seen["status"],
                seen["bytes"],
                took_ms,
                client[0],
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": seen["status"],
                    "bytes": seen["bytes"],
                    "ms": round(took_ms, 1),
                    "client": client[0],
                },
            )


def install(app: FastAPI) -> None:
    app.add_middleware(AccessLog)
