"""API throughput and latency: the hot endpoints against GET /health on the same server.

    .venv/bin/python benchmarks/api.py --dataset ../shared/data/housing.csv
    .venv/bin/python benchmarks/api.py --dataset ../shared/data/housing.csv --before fc28ab9

Starts `local-ml-flow serve --embedded --run-first` on a free port, then drives it with wrk
(8 connections, as in the issue's figures; 2 threads; 10 s per endpoint) when wrk is
installed (`apt-get install wrk`), else with a bounded asyncio client. ``--before REV`` also
serves that commit's ``src/`` (exported with `git archive`, imported through PYTHONPATH) and
measures both servers in alternating rounds (A B B A ...), so a loaded machine slows both
alike; ratios are taken within a round (each endpoint against the same server's /health,
measured before and after the other endpoints of that round) and the figures printed are
medians over the rounds. Prints figures; asserts nothing.
Targets (issue 13): /predict (one house) >= 70 % of /health's throughput with p99 <= 10 ms;
/result/local-ml-flow-data >= 85 % of /health.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from common import export, free_port
from local_ml_flow.api.schemas import EXAMPLE_HOUSE

ROOT = Path(__file__).resolve().parent.parent
HOUSE = EXAMPLE_HOUSE
HEALTH, RESULT, PREDICT = "/health", "/result/local-ml-flow-data", "/predict"
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", HEALTH, None),
    ("GET", RESULT, None),
    ("POST", PREDICT, {"houses": [HOUSE]}),
]
# path -> (least share of /health's throughput, largest p99 in ms or None)
TARGETS: dict[str, tuple[float, float | None]] = {PREDICT: (0.70, 10.0), RESULT: (0.85, None)}


def start_server(dataset: Path, src: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``serve --embedded --run-first`` of the tree ``src`` on free ports, fresh state."""
    port = free_port()
    state = tempfile.mkdtemp(prefix="lmf-bench-state-")  # never the user's state
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "LMF_EMBEDDED_PORT": str(free_port()),
        "LMF_STATE_DIR": state,
    }
    check = "import local_ml_flow, sys; sys.stdout.write(local_ml_flow.__file__)"
    imported = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, check=True
    ).stdout
    if not imported.startswith(str(src)):
        raise SystemExit(f"the server would import {imported}, not {src}")
    cmd = [sys.executable, "-m", "local_ml_flow.cli", "serve", "--embedded", "--run-first"]
    process = subprocess.Popen(
        [*cmd, "--dataset", str(dataset), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{RESULT}", timeout=1).status_code == 200:
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
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    seconds: int,
    connections: int,
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
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua.name]
    out = subprocess.run([*command, url + path], capture_output=True, text=True, check=True).stdout
    os.unlink(lua.name)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "errors": int(errors.group(1)) if errors else 0,
    }


async def _client_loop(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    seconds: int,
    connections: int,
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

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "errors": errors,
    }


def measure(url: str, seconds: int, connections: int, use_wrk: bool) -> dict[str, dict[str, Any]]:
    """One round: /health, each endpoint in turn, /health again; adds each endpoint's share
    of /health's throughput (the mean of the two /health runs around it)."""

    def drive(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        if use_wrk:
            return with_wrk(url, method, path, body, seconds, connections)
        return asyncio.run(_client_loop(url, method, path, body, seconds, connections))

    results = {path: drive(method, path, body) for method, path, body in ENDPOINTS}
    again = drive("GET", HEALTH, None)
    health = results[HEALTH]
    for name in ("rps", "p50", "p99"):
        health[name] = (health[name] + again[name]) / 2
    health["errors"] += again["errors"]
    for figures in results.values():
        figures["share"] = figures["rps"] / health["rps"]
    return results


def verdict(path: str, share: float, p99: float) -> str:
    if path not in TARGETS:
        return ""
    least, most_p99 = TARGETS[path]
    ok = share >= least and (most_p99 is None or p99 <= most_p99)
    wanted = f">= {least:.0%}" + (f", p99 <= {most_p99:g} ms" if most_p99 is not None else "")
    return f"  target {wanted}: {'met' if ok else 'NOT met'}"


def report(label: str, rounds: list[dict[str, dict[str, Any]]]) -> None:
    print(f"  {label}:")
    for method, path, _ in ENDPOINTS:

        def median(name: str, path: str = path) -> float:
            return float(statistics.median(r[path][name] for r in rounds))

        share, p99 = median("share"), median("p99")
        print(
            f"    {method:4} {path:28} {median('rps'):7.0f} req/s ({share:4.0%} of /health)"
            f"  p50 {median('p50'):5.2f} ms  p99 {p99:6.2f} ms"
            f"  non-2xx {sum(r[path]['errors'] for r in rounds)}{verdict(path, share, p99)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/housing.csv")
    parser.add_argument("--seconds", type=int, default=10, help="per endpoint and round")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--before", help="a commit to compare with (interleaved rounds)")
    parser.add_argument("--rounds", type=int, help="rounds per server (default 1, 3 with --before)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.before else 1)
    use_wrk = shutil.which("wrk") is not None
    workdir = Path(tempfile.mkdtemp(prefix="lmf-api-bench-"))
    trees = {"after": ROOT / "src"}
    if args.before:
        trees = {"before": export(args.before, workdir), **trees}
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for name, src in trees.items():
            servers[name] = start_server(args.dataset.resolve(), src)
        load = os.getloadavg()
        print(
            f"{len(servers)} server(s), {args.connections} connections, {args.seconds} s per"
            f" endpoint, {rounds} round(s){' interleaved' if len(servers) > 1 else ''}; driver:"
            f" {'wrk' if use_wrk else 'asyncio httpx (install wrk for better figures)'};"
            f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        results: dict[str, list[dict[str, dict[str, Any]]]] = {name: [] for name in servers}
        order = list(servers)
        for _ in range(rounds):  # A B B A ...: the machine's load hits both alike
            for name in order:
                url = servers[name][1]
                results[name].append(measure(url, args.seconds, args.connections, use_wrk))
            order.reverse()
        for name in servers:
            label = f"{name} ({args.before})" if name == "before" else name
            report(label + (f", median of {rounds} rounds" if rounds > 1 else ""), results[name])
        load = os.getloadavg()
        print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
