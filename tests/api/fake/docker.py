"""A stand-in for the `docker` CLI, to run start_all.sh's Docker path without an engine.

It records every call (arguments and the LMF_* variables compose would read) in
$FAKE_DOCKER_DIR/calls.jsonl and plays the stack by $FAKE_DOCKER_SCENARIO:
  no-compose   the engine answers, the compose v2 plugin is missing
  run-fails    the API comes up; POST /pipeline/runs answers 502 (counted in posts.txt)
  api-crashes  the API container exits at once (compose ps says so)
  ok           the API comes up; POST /pipeline/runs answers 201
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STATE = Path(os.environ["FAKE_DOCKER_DIR"])
SCENARIO = os.environ.get("FAKE_DOCKER_SCENARIO", "ok")
RUN = {"run_id": "fake-run", "metrics": {"r2": 0.6529, "score": "65.29%"}}


class Api(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.answer(200, {"ready": True})

    def do_POST(self) -> None:
        with (STATE / "posts.txt").open("a") as out:
            out.write(f"{self.path}\n")
        if SCENARIO == "run-fails":
            self.answer(502, {"error": {"type": "FunctionFailedError", "message": "boom"}})
        else:
            self.answer(201, RUN)


def serve_api(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), Api).serve_forever()


def compose(args: list[str]) -> int:
    if args[:1] == ["version"]:
        if SCENARIO == "no-compose":
            print("docker: 'compose' is not a docker command.", file=sys.stderr)
            return 1
        print("Docker Compose version v2.29.0")
        return 0
    if args[:1] == ["up"]:
        if SCENARIO != "api-crashes":
            port = os.environ["LMF_API_PORT"]
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", port], start_new_session=True
            )
            (STATE / "api.pid").write_text(str(server.pid))
        return 0
    if args[:1] == ["ps"]:
        api = "api exited 1" if SCENARIO == "api-crashes" else "api running 0"
        print(f"localstack running 0\nterraform exited 0\n{api}")
        return 0
    if args[:1] == ["logs"]:
        print("fake logs")
        if "--follow" in args:  # until the stack is down, as compose does
            deadline = time.monotonic() + 300
            while (STATE / "api.pid").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        return 0
    if args[:1] == ["down"]:
        pid = STATE / "api.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)
            pid.unlink()
        return 0
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve_api(int(argv[1]))
        return 0
    with (STATE / "calls.jsonl").open("a") as out:
        env = {k: v for k, v in os.environ.items() if k.startswith("LMF_")}
        out.write(json.dumps({"args": argv, "env": env}) + "\n")
    if argv[:1] == ["info"]:
        return 0
    if argv[:1] == ["compose"]:
        return compose(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
