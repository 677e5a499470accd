"""What hostile input costs the API: wide CSV headers, chunked over-limit bodies, dataset
pages of a large dataset, a hung AWS endpoint.

    .venv/bin/python benchmarks/hostile.py --dataset ../shared/data/housing.csv

Starts `local-ml-flow serve --embedded` (and, for the hung endpoint, a server pointed at a
socket that accepts and never answers) on free ports. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from local_ml_flow import aws
from local_ml_flow.errors import DatasetValidationError
from local_ml_flow.ml import dataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local_ml_flow.cli", "serve", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LMF_EMBEDDED_PORT": str(free_port()), **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wide_headers(base: bytes, url: str) -> None:
    header, _, rest = base.partition(b"\n")
    for columns in (20_000, 100_000):
        for kind in ("unknown", "duplicated"):
            extra = (
                b",".join(b"c%d" % i for i in range(columns))
                if kind == "unknown"
                else b",".join([b"area"] * columns)
            )
            data = header + b"," + extra + b"\n" + rest
            started = time.perf_counter()
            with contextlib.suppress(DatasetValidationError):
                dataset.load_dataset(data, max_bytes=10**9, max_rows=10**9)
            local = time.perf_counter() - started
            started = time.perf_counter()
            status = httpx.put(
                f"{url}/bucket/dataset", files={"file": ("h.csv", data, "text/csv")}, timeout=600
            ).status_code
            http = time.perf_counter() - started
            print(
                f"header +{columns:>7,} {kind:<10} ({len(header) + len(extra):>9,} B):"
                f" refused in {local * 1000:7.1f} ms in-process, {http * 1000:7.1f} ms over HTTP"
                f" ({status})"
            )


def chunked_over_limit(port: int, path: str, content_type: bytes, prefix: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        if path == "/bucket/dataset"
        else f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    )
    sock.sendall(b"Content-Type: " + content_type + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent, started, total = len(prefix), time.perf_counter(), 2 << 30
    sock.settimeout(5)
    while sent < total and not select.select([sock], [], [], 0)[0]:
        try:
            sock.sendall(chunk)
        except OSError:
            break
        sent += len(piece)
    answer = sock.recv(200).split(b"\r\n", 1)[0].decode()
    sock.close()
    print(
        f"chunked {path:<16} {answer!r}: after {sent / 2**20:6.1f} MiB of an offered"
        f" {total / 2**30:.0f} GiB, {time.perf_counter() - started:.2f} s"
    )


def dataset_pages(url: str, pid: int, base: bytes, megabytes: int) -> None:
    header, _, rest = base.partition(b"\n")
    big = header + b"\n" + rest * (megabytes * 2**20 // len(rest) + 1)
    _put_big(big)  # above the 50 MiB upload limit: straight into the emulator
    print(f"dataset of {len(big) / 2**20:.0f} MB, RSS before: {rss_mb(pid):.0f} MB")
    started = time.perf_counter()
    first = httpx.get(f"{url}/bucket/dataset", params={"limit": 1}, timeout=600)
    print(
        f"  first ?limit=1 (builds the index): {time.perf_counter() - started:.2f} s,"
        f" row_count {first.json()['row_count']:,}"
    )

    def one(i: int) -> float:
        t = time.perf_counter()
        offset = 123_456 + 5000 * (i % 4)
        params = {"limit": 1, "offset": offset}
        page = httpx.get(f"{url}/bucket/dataset", params=params, timeout=600)
        page.raise_for_status()
        return time.perf_counter() - t

    with ThreadPoolExecutor(8) as pool:
        times = sorted(pool.map(one, range(64)))
    print(
        f"  64 calls, 8 concurrent: median {times[32] * 1000:.1f} ms, max"
        f" {times[-1] * 1000:.1f} ms; RSS after: {rss_mb(pid):.0f} MB"
    )


_BIG_TARGET: dict[str, str] = {}


def _put_big(data: bytes) -> None:
    s3 = aws.client("s3", endpoint_url=_BIG_TARGET["endpoint"])
    s3.put_object(Bucket="local-ml-flow-data", Key="housing.csv", Body=data)


def hung_endpoint(dataset_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(500)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "LMF_MODE": "localstack",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    process, url, _ = start(["--no-run"], env)
    try:

        def timed(path: str) -> tuple[int, float]:
            t = time.perf_counter()
            status = httpx.get(f"{url}{path}", timeout=600).status_code
            return status, time.perf_counter() - t

        with ThreadPoolExecutor(60) as pool:
            readies = [pool.submit(timed, "/ready") for _ in range(45)]
            result = pool.submit(timed, "/result/local-ml-flow-data")
            time.sleep(0.5)
            root = timed("/")
            answers = [f.result() for f in readies]
            res = result.result()
        print(
            f"hung endpoint: 45 concurrent /ready -> {sorted({s for s, _ in answers})} in at most"
            f" {max(t for _, t in answers):.1f} s; /result -> {res[0]} in {res[1]:.1f} s;"
            f" GET / meanwhile -> {root[0]} in {root[1] * 1000:.0f} ms"
        )
    finally:
        process.terminate()
        process.wait()
        listener.close()
        for sock in held:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--dataset-mb", type=int, default=50)
    args = parser.parse_args()
    base = args.dataset.read_bytes()
    embedded_port = free_port()
    process, url, port = start(
        ["--embedded", "--no-run", "--dataset", str(args.dataset)],
        {"LMF_EMBEDDED_PORT": str(embedded_port)},
    )
    _BIG_TARGET["endpoint"] = f"http://127.0.0.1:{embedded_port}"
    try:
        wide_headers(base, url)
        multipart = (
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="h.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\n" + base
        )
        chunked_over_limit(port, "/bucket/dataset", b"multipart/form-data; boundary=xyz", multipart)
        chunked_over_limit(port, "/predict", b"application/json", b'{"houses": [')
        print(f"server RSS after the chunked bodies: {rss_mb(process.pid):.0f} MB")
        dataset_pages(url, process.pid, base, args.dataset_mb)
    finally:
        process.terminate()
        process.wait()
    hung_endpoint(args.dataset)


if __name__ == "__main__":
    main()
