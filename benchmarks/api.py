"""API throughput and latency: the hot endpoints against GET /health on the same server.

    .venv/bin/python benchmarks/api.py --dataset ../shared/data/housing.csv

Starts `local-ml-flow serve --embedded --run-first` on a free port, then drives it with wrk
(16 connections, 10 s per endpoint) when wrk is installed (`apt-get install wrk`), else with
a bounded asyncio client. Prints figures; asserts nothing. Targets (issue): /result and
/predict >= 50% of /health's throughput, p99 <= 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from local_ml_flow.api.schemas import EXAMPLE_HOUSE

ROOT = Path(__file__).resolve().parent.parent
HOUSE = EXAMPLE_HOUSE
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/health", None),
    ("GET", "/result/local-ml-flow-data", None),
    ("POST", "/predict", {"houses": [HOUSE]}),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(dataset: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    state = tempfile.mkdtemp(prefix="lmf-bench-state-")  # never the user's state
    env = {**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), "LMF_STATE_DIR": state}
    cmd = [sys.executable, "-m", "local_ml_flow.cli", "serve", "--embedded", "--run-first"]
    process = subprocess.Popen(
        [*cmd, "--dataset", str(dataset), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/result/local-ml-flow-data", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not come up")


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def with_wrk(
    url: str, method: str, path: str, body: dict[str, Any] | None, seconds: int
) -> dict[str, Any]:
    script = ""
    if body is not None:
        script = (
            f'wrk.method = "{method}"\n'
            f"wrk.body = [[{json.dumps(body)}]]\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", lua.name, url + path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(lua.name)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "errors": int(errors.group(1)) if errors else 0,
    }


async def _client_loop(
    url: str, method: str, path: str, body: dict[str, Any] | None, seconds: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            start = time.perf_counter()
            response = await client.request(method, path, json=body)
            latencies.append((time.perf_counter() - start) * 1000)
            errors += response.status_code >= 300

    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/housing.csv")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    process, url = start_server(args.dataset)
    try:
        print(
            f"server {url}, 16 connections, {args.seconds} s each, driver:"
            f" {'wrk' if use_wrk else 'asyncio httpx (install wrk for better figures)'}"
        )
        results = {}
        for method, path, body in ENDPOINTS:
            if use_wrk:
                results[path] = with_wrk(url, method, path, body, args.seconds)
            else:
                results[path] = asyncio.run(_client_loop(url, method, path, body, args.seconds))
        base = results["/health"]["rps"]
        for (method, path, _), figures in zip(ENDPOINTS, results.values(), strict=True):
            print(
                f"  {method:4} {path:28} {figures['rps']:8.0f} req/s"
                f" ({figures['rps'] / base:5.0%} of /health)  p50 {figures['p50']:6.2f} ms"
                f"  p99 {figures['p99']:6.2f} ms  non-2xx {figures['errors']}"
            )
        print("targets: /result and /predict >= 50% of /health, p99 <= 25 ms")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
