"""Embedded stack: start, restart with stored runs, warm pipeline, Lambda API invokes, memory.

    .venv/bin/python benchmarks/embedded.py --dataset ../shared/data/housing.csv

Drives the user's command (``local-ml-flow serve --embedded``) on free ports with a private
state directory, and prints figures; asserts nothing:
- start to ready: process start until ``GET /ready`` is 200 (fresh state);
- warm pipeline: ``POST /pipeline/runs`` (in-process invoker, the default), median;
- Lambda API: ``invoke`` of the inference function through the emulator, cold then warm;
- memory: RSS of the emulator process tree (and of the whole server tree) at the peak of
  10 concurrent ``POST /pipeline/runs``;
- restart to ready with ``--runs`` runs stored (graceful stop, start on the same state) and
  how many runs the restarted server still lists.

``--before REV`` measures only the warm pipeline, of this checkout and of that commit's
``src/`` (exported with `git archive`, imported through PYTHONPATH): two servers, their
``POST /pipeline/runs`` alternating one by one (A B B A ...) so a loaded machine slows both
alike. Target (issue 13): warm median <= 120 ms.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from common import export, free_port
from local_ml_flow import aws

ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    """Every descendant of pid (from /proc)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            for child in map(int, text.split()):
                found += [child, *children(child)]
    except OSError:
        pass
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total / 1024 / 1024


def listener_pid(port: int, among: list[int]) -> int | None:
    """The process among `among` listening on 127.0.0.1:port (the emulator), if any."""
    inodes: set[str] = set()
    hexport = f"{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{hexport}") and fields[3] == "0A":
            inodes.add(fields[9])
    for pid in among:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return pid
        except OSError:
            continue
    return None


class Server:
    """``local-ml-flow serve --embedded --no-run`` on free ports."""

    def __init__(
        self, dataset: Path, state_dir: Path, log: Path, invoker: str, src: Path | None = None
    ) -> None:
        self.port, self.emulator_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        env = {
            **os.environ,
            **({"PYTHONPATH": str(src)} if src is not None else {}),
            "LMF_EMBEDDED_PORT": str(self.emulator_port),
            "LMF_STATE_DIR": str(state_dir),
            "LMF_CACHE_DIR": str(state_dir.parent / "cache"),
            "LMF_INVOKER": invoker,
        }
        self._log = log.open("a")
        # One client, its connection kept alive, as a browser or a script would: httpx.post()
        # builds a client (and a TLS context) per call, about 30 ms of the caller's CPU.
        self.http = httpx.Client(base_url=self.url, timeout=600)
        started = time.perf_counter()
        cmd = [sys.executable, "-m", "local_ml_flow.cli", "serve", "--embedded", "--no-run"]
        self.process = subprocess.Popen(
            [*cmd, "--dataset", str(dataset), "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited; see {log}")
            try:
                if self.http.get("/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server was not ready in 120 s; see {log}")
            time.sleep(0.05)
        self.ready_s = time.perf_counter() - started

    def tree(self) -> list[int]:
        return [self.process.pid, *children(self.process.pid)]

    def stop(self) -> float:
        """SIGTERM, as Ctrl-C would; returns how long the server took to exit."""
        started = time.perf_counter()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self.http.close()
        return time.perf_counter() - started

    def run_once(self) -> float:
        """One ``POST /pipeline/runs``, waited for; returns its seconds."""
        started = time.perf_counter()
        response = self.http.post("/pipeline/runs", json={})
        if response.status_code != 201:
            raise SystemExit(f"POST /pipeline/runs: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - started


def lambda_invokes(server: Server, n: int = 5) -> None:
    # no retries, and a read timeout of 600 s: room for a cold start
    client = aws.client("lambda", endpoint_url=server.emulator_url, function_timeout_s=540)
    times: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.invoke(
            FunctionName="local-ml-flow-inference", Payload=json.dumps({}).encode()
        )
        payload = response["Payload"].read()
        times.append(time.perf_counter() - started)
        if response.get("FunctionError"):
            print(
                f"  Lambda API invoke: FunctionError {response['FunctionError']}:"
                f" {payload[:200]!r} (the emulator does not run the functions)"
            )
            return
    warm = statistics.median(times[1:])
    print(f"  Lambda API invoke (inference): cold {times[0]:.2f} s, warm median {warm:.3f} s")


def concurrent_rss(server: Server, n: int = 10) -> None:
    peak_all = peak_emulator = peak_workers = 0.0
    done = threading.Event()
    emulator = listener_pid(server.emulator_port, server.tree())

    def sample() -> None:
        nonlocal peak_all, peak_emulator, peak_workers
        while not done.is_set():
            tree = server.tree()
            peak_all = max(peak_all, rss_mb(tree))
            if emulator is not None and emulator != server.process.pid:
                peak_emulator = max(peak_emulator, rss_mb([emulator]))
                peak_workers = max(peak_workers, rss_mb(children(emulator)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda _: server.run_once(), range(n)))
    took = time.perf_counter() - started
    done.set()
    sampler.join()
    where = (
        f"emulator process peak {peak_emulator:.0f} MB, its Lambda workers {peak_workers:.0f} MB"
        if emulator not in (None, server.process.pid)
        else "emulator in the server process"
    )
    print(f"  {n} concurrent runs: {took:.2f} s; server tree peak RSS {peak_all:.0f} MB; {where}")


def warm_before_after(dataset: Path, rev: str, invoker: str, runs: int) -> None:
    """Warm ``POST /pipeline/runs`` of ``rev`` and of this checkout, alternating."""
    with tempfile.TemporaryDirectory(prefix="lmf-bench-", ignore_cleanup_errors=True) as tmp:
        trees = {"before": export(rev, Path(tmp)), "after": ROOT / "src"}
        servers: dict[str, Server] = {}
        try:
            for name, src in trees.items():
                home = Path(tmp) / name
                home.mkdir()
                servers[name] = Server(dataset, home / "state", home / "server.log", invoker, src)
            load = os.getloadavg()
            times: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(3):  # warm-up: the first runs import and load what they need
                for server in servers.values():
                    server.run_once()
            order = list(servers)
            for _ in range(runs):  # A B B A A B ...: neither always runs right after the other
                for name in order:
                    times[name].append(servers[name].run_once())
                order.reverse()
            print(
                f"warm pipeline through the API, {runs} runs per server, alternating; load average"
                f" {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
            )
            for name, taken in times.items():
                label = f"before ({rev})" if name == "before" else "after"
                print(
                    f"  {label:<18} median {statistics.median(taken) * 1000:5.0f} ms"
                    f" (min {min(taken) * 1000:4.0f} ms)"
                )
            print("target: warm median <= 120 ms")
        finally:
            for server in servers.values():
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/housing.csv")
    parser.add_argument("--runs", type=int, default=100, help="runs stored before the restart")
    parser.add_argument(
        "--invoker",
        choices=["local", "lambda"],
        default="local",
        help="how the API runs the functions (local: in-process, the default; lambda: through"
        " the emulator's Lambda API, one worker process per concurrent call)",
    )
    parser.add_argument("--before", help="only the warm pipeline, against this commit")
    parser.add_argument("--warm-runs", type=int, default=20, help="with --before, per server")
    args = parser.parse_args()
    if args.before:
        warm_before_after(args.dataset.resolve(), args.before, args.invoker, args.warm_runs)
        return
    with tempfile.TemporaryDirectory(prefix="lmf-bench-", ignore_cleanup_errors=True) as tmp:
        state, log = Path(tmp) / "state", Path(tmp) / "server.log"
        server = Server(args.dataset, state, log, args.invoker)
        try:
            print(f"invoker: {args.invoker}")
            print(f"start to ready (fresh state): {server.ready_s:.2f} s")
            first = server.run_once()
            warm = [server.run_once() for _ in range(10)]
            print(
                f"  pipeline through the API: first {first:.2f} s,"
                f" warm median {statistics.median(warm) * 1000:.0f} ms"
            )
            lambda_invokes(server)
            concurrent_rss(server)
            stored = 1 + len(warm) + 10
            while stored < args.runs:
                server.run_once()
                stored += 1
        finally:
            print(f"  graceful stop (SIGTERM to exit): {server.stop():.2f} s")
        server = Server(args.dataset, state, log, args.invoker)
        try:
            listed = server.http.get("/pipeline/runs", params={"limit": 500}).json()
            print(
                f"restart to ready with {stored} runs stored: {server.ready_s:.2f} s;"
                f" runs listed after the restart: {len(listed['runs'])}"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
