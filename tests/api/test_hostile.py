"""Hostile HTTP through a real server: oversized and chunked bodies, slow clients, foreign
Host and Origin headers, undeclared content types, strict types, a hung AWS endpoint."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ApiServer, assert_error, start_server
from tests.api.test_api import DATA, HOUSE

UPLOAD_LIMIT = 200_000
BODY_TIMEOUT_S = 1.5
BODY_DEADLINE_S = 4.0
HEADER_TIMEOUT_S = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, dataset_path: Path) -> Iterator[ApiServer]:
    api = start_server(
        tmp_path_factory,
        dataset_path,
        env={
            "LMF_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
            "LMF_ALLOWED_HOSTS": "api.internal, Other-Name",
            "LMF_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "LMF_BODY_DEADLINE_S": str(BODY_DEADLINE_S),
            "LMF_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        },
    )
    yield api
    api.stop()


def _response(sock: socket.socket, timeout_s: float = 10) -> tuple[int, dict]:
    """Read one HTTP response (closed or complete by Content-Length): status and JSON body."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(v) for k, _, v in (x.partition(": ") for x in lines) if k.lower() == "content-length"
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), json.loads(body)


def _chunked(
    server: ApiServer, method: str, path: str, content_type: bytes, total: int, prefix: bytes = b""
) -> tuple[int, dict, int]:
    """Stream a chunked body of up to ``total`` bytes, stopping as soon as the server answers.

    Returns the status, the error body and how many body bytes were sent before the answer.
    """
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b"Content-Type: "
            + content_type
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"x" * 65536
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        if prefix:
            sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
        sent = len(prefix)
        sock.settimeout(5)
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(piece)
        status, body = _response(sock)
        return status, body, sent
    finally:
        sock.close()


def test_chunked_upload_over_the_limit_is_refused_while_streaming(server, client, dataset_bytes):
    """A chunked upload gives no length to check: it is counted as it arrives, not spooled."""
    total = 256 * 1024 * 1024
    status, body, sent = _chunked(
        server,
        "PUT",
        "/bucket/dataset",
        b"multipart/form-data; boundary=xyz",
        total,
        prefix=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="h.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + dataset_bytes,
    )
    assert status == 413, body
    assert body["error"]["type"] == "PayloadTooLargeError"
    assert sent < 64 * 1024 * 1024, f"{sent} bytes went in before the 413"
    assert client.get("/bucket/dataset").json()["row_count"] == 545


def test_chunked_predict_over_its_cap_is_413(server):
    status, body, sent = _chunked(server, "POST", "/predict", b"application/json", 256 << 20)
    assert status == 413, body
    assert body["error"]["type"] == "PayloadTooLargeError"
    assert "1048576 bytes" in body["error"]["message"]
    assert sent < 64 * 1024 * 1024


def test_declared_lengths_over_the_caps_are_413(client):
    big = {"houses": [HOUSE] * 1000, "pad": "x" * (1 << 20)}
    assert_error(client.post("/predict", json=big), 413, "PayloadTooLargeError")
    params = {"model": "linear", "pad": "x" * 100_000}
    assert_error(client.post("/pipeline/runs", json=params), 413, "PayloadTooLargeError")


def test_a_stalled_body_times_out(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    with sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"houses":'
        )
        started = time.monotonic()
        status, body = _response(sock, timeout_s=BODY_TIMEOUT_S + 10)
    assert status == 408, body
    assert body["error"]["type"] == "RequestTimeoutError"
    assert time.monotonic() - started < BODY_TIMEOUT_S + 5


def test_a_body_that_trickles_in_is_cut_at_the_deadline(server):
    """One byte every half second never stalls for LMF_BODY_TIMEOUT_S, yet the request ends
    with 408 once LMF_BODY_DEADLINE_S has passed since its head (before: never)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    with sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        trickled = 0
        while not select.select([sock], [], [], BODY_TIMEOUT_S / 3)[0]:
            assert time.monotonic() - started < BODY_DEADLINE_S + 10, "no answer: never cut"
            try:
                sock.sendall(b" ")  # JSON whitespace: a valid body, only slow
            except (BrokenPipeError, ConnectionResetError):
                break  # answered and closed meanwhile: read the answer
            trickled += 1
        taken = time.monotonic() - started
        status, body = _response(sock)
    assert status == 408, body
    assert body["error"]["type"] == "RequestTimeoutError"
    assert f"within {BODY_DEADLINE_S:g} s" in body["error"]["message"]
    assert trickled >= 4  # it kept sending meanwhile: never a stall of LMF_BODY_TIMEOUT_S
    assert BODY_DEADLINE_S - 0.5 < taken < BODY_DEADLINE_S + 5


@pytest.mark.parametrize("opening", [b"", b"GET /health HTTP/1.1\r\nHost: 127"])
def test_silent_or_slow_headers_are_cut(server, opening):
    sock = socket.create_connection(("127.0.0.1", server.port))
    with sock:
        sock.sendall(opening)
        sock.settimeout(HEADER_TIMEOUT_S + 10)
        assert sock.recv(1024) == b""  # closed by the server, not by our timeout


def _runs(client: httpx.Client) -> int:
    return len(client.get("/pipeline/runs").json()["runs"])


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({"content-type": "text/plain"}, b""),
        ({"content-type": "text/plain"}, b"{}"),
        ({"content-type": "application/x-www-form-urlencoded"}, b"model=linear"),
        ({"content-type": "multipart/form-data; boundary=x"}, b"--x--\r\n"),
        ({}, b"{}"),  # a body without a content type
    ],
)
def test_undeclared_content_types_never_start_a_run(client, headers, content):
    before = _runs(client)
    response = client.post("/pipeline/runs", headers=headers, content=content)
    error = assert_error(response, 415, "UnsupportedMediaTypeError")
    assert "application/json" in error["message"]
    assert _runs(client) == before


def test_predict_and_upload_take_only_their_content_types(client, dataset_bytes):
    response = client.post("/predict", content=json.dumps({"houses": [HOUSE]}))
    assert_error(response, 415, "UnsupportedMediaTypeError")
    response = client.post(
        "/predict", content=json.dumps({"houses": [HOUSE]}), headers={"content-type": "text/plain"}
    )
    assert_error(response, 415, "UnsupportedMediaTypeError")
    response = client.put(
        "/bucket/dataset", content=dataset_bytes, headers={"content-type": "text/csv"}
    )
    assert_error(response, 415, "UnsupportedMediaTypeError")


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://localhost:1"},  # another local site is another origin
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
def test_cross_site_writes_are_refused_even_without_a_body(client, headers):
    before = _runs(client)
    error = assert_error(
        client.post("/pipeline/runs", headers=headers), 403, "CrossSiteRequestError"
    )
    assert error["message"]
    assert _runs(client) == before


def test_writes_from_the_servers_own_pages_pass(server, client):
    """The Swagger UI at /docs posts with the server's own Origin."""
    own = {"origin": server.url, "sec-fetch-site": "same-origin"}
    response = client.post("/pipeline/runs", headers=own, json={"feature_set": "seed"})
    assert response.status_code == 201, response.text
    predicted = client.post("/predict", headers=own, json={"houses": [HOUSE]})
    assert predicted.status_code == 200, predicted.text
    # the original flow: POST with no body and no content type
    bare = httpx.post(f"{server.url}/pipeline/runs", timeout=60)
    assert bare.status_code == 201, bare.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io", ""])
def test_foreign_host_names_are_400(server, host):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, body = _response(sock)
    assert status == 400, body
    assert body["error"]["type"] == "InvalidHostError"


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1:8000", "[::1]:8000", "API.internal", "other-name:1"]
)
def test_local_and_configured_host_names_pass(server, host):
    response = httpx.get(f"{server.url}/health", headers={"host": host})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("area", True),
        ("parking", False),
        ("area", "7420"),
        ("bedrooms", 2.5),
        ("stories", -1),
        ("bathrooms", 1001),
        ("area", 1e300),
    ],
)
def test_predict_takes_json_numbers_of_the_datasets_types(client, field, value):
    response = client.post("/predict", json={"houses": [{**HOUSE, field: value}]})
    error = assert_error(response, 422, "RequestValidationError")
    assert error["details"][0]["loc"] == ["body", "houses", 0, field]


def test_predict_takes_whole_floats(client):
    client.post("/pipeline/runs")
    response = client.post("/predict", json={"houses": [{**HOUSE, "area": 7420.0}]})
    assert response.status_code == 200, response.text


def test_csv_refuses_what_predict_refuses(client, dataset_bytes):
    bad = dataset_bytes.replace(b"13300000,7420,4,", b"13300000,7420,2.5,", 1)
    response = client.put("/bucket/dataset", files={"file": ("h.csv", bad, "text/csv")})
    error = assert_error(response, 422, "DatasetValidationError")
    assert error["details"] == ["column 'bedrooms': expected whole numbers at line 2 (found '2.5')"]


def test_wide_and_duplicated_headers_are_refused(client, dataset_bytes):
    header, _, rest = dataset_bytes.partition(b"\n")
    wide = header + b"," + b",".join(b"area" for _ in range(20_000)) + b"\n" + rest
    response = client.put(
        "/bucket/dataset", files={"file": ("h.csv", wide[:UPLOAD_LIMIT], "text/csv")}
    )
    error = assert_error(response, 422, "DatasetValidationError")
    assert error["details"] == ["duplicated columns: area"]


# -- a hung AWS endpoint: accepts connections, never answers --------------------------------


@pytest.fixture(scope="module")
def hung_endpoint() -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(200)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for sock in held:
        sock.close()
    listener.close()


@pytest.fixture(scope="module")
def hung_server(
    tmp_path_factory: pytest.TempPathFactory, dataset_path: Path, hung_endpoint: str
) -> Iterator[ApiServer]:
    api = start_server(
        tmp_path_factory,
        dataset_path,
        args=["--no-run"],
        env={"AWS_ENDPOINT_URL": hung_endpoint, "LMF_MODE": "localstack"},
    )
    yield api
    api.stop()


def test_hung_endpoint_gives_503_in_bounded_time_and_keeps_the_server_free(hung_server):
    """/ready and /result answer 503 within ~15 s; 45 concurrent /ready do not starve `GET /`."""

    def timed(path: str) -> tuple[int, float]:
        started = time.monotonic()
        response = httpx.get(f"{hung_server.url}{path}", timeout=60)
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=50) as pool:
        readies = [pool.submit(timed, "/ready") for _ in range(45)]
        result = pool.submit(timed, f"/result/{DATA}")
        time.sleep(0.5)
        root_status, root_s = timed("/")
        answers = [f.result() for f in readies]
        result_status, result_s = result.result()
    assert root_status == 200
    assert root_s < 5, f"GET / took {root_s:.1f} s while /ready calls were hung"
    assert {status for status, _ in answers} == {503}
    assert max(s for _, s in answers) < 20
    assert result_status == 503
    assert result_s < 20
