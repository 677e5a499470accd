"""The README's shell blocks, run as written on a fresh clone of this checkout: they cannot drift.

Every ```bash block of README.md runs in order, each in a fresh ``bash -e -o pipefail`` from the
root of a ``git clone`` of this checkout (its last commit: uncommitted changes are not in the
clone), as a reader would paste it, with these substitutions, all printed:

- the ``git clone`` line is the clone the test made;
- ``./bin/start_all.sh`` runs in the background with free ports (``LMF_API_PORT``,
  ``LMF_EMBEDDED_PORT``; ``localhost:8000`` and ``127.0.0.1:4566`` in later commands follow),
  ``LMF_DATASET_PATH`` set to the reference dataset the tests use, and a ``docker`` that does
  not answer (so it takes the embedded path, as on a machine without Docker); its state is the
  clone's own ``.lmf/state``. The test waits for ``/ready``, runs the following blocks, then
  stops it with Ctrl-C (SIGINT) and checks that it exits with 0 and frees both ports;
- ``./bin/test.sh`` is skipped: it would run this test again;
- ``curl`` gets ``--fail-with-body -sS``, so an error answer fails its block;
- a block marked ``<!-- readme-test: skip REASON -->`` on the line before its fence (Docker,
  LocalStack, real AWS) is skipped with that reason; one that needs a tool this machine lacks
  (the AWS CLI) is skipped saying so.

The clone's ``.venv`` is made by the scripts (``uv sync --frozen``): seconds with uv's package
cache warm, as it is once ``./bin/test.sh`` has synced the dev venv; a cold cache downloads
every package first. ``PYTHONDONTWRITEBYTECODE`` (set on CI machines) is dropped from the
blocks' environment, as in a reader's shell: otherwise every process would compile pandas and
scikit-learn again. The ``==> `` lines of the README's sample output must all be printed by
``start_all.sh`` (run ids, paths, ports and versions aside).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.docs.conftest import NOT_RUN

README = ROOT / "README.md"
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s+(?P<reason>.+?)\s*-->")
FENCE = re.compile(r"^```(?P<info>.*)$")
# Fenced blocks the README may hold: bash (run here) and text (sample output, not run).
LANGUAGES = {"bash", "text"}
# Tools a block may need that a machine may lack; a block needing a missing one is skipped.
OPTIONAL_TOOLS = ("aws", "docker", "terraform")
API_PORT, EMULATOR_PORT = "8000", "4566"
# Parts of the sample output that differ from run to run, as (README text, what matches it).
VARIABLE = (
    (r"\d{8}T\d{12}Z-[0-9a-f]{6}", r"\d{8}T\d+Z-[0-9a-f]{6}"),  # a run id
    (r"/home/you/local-ml-flow/\.lmf/state", r"/\S+"),  # the state directory
    (r"uv \d+\.\d+\.\d+ \([^)]*\)", r"uv \d+\.\d+\.\d+(?: \([^)]*\))?"),  # uv's version
    (r"(?<=sha256 )[0-9a-f]{12}\b", r"[0-9a-f]{12}"),  # a model's sha256
    (rf"(?<=:)(?:{API_PORT}|{EMULATOR_PORT})\b", r"\d+"),  # the ports
)


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    skip: str | None  # the reason given by a skip mark


def fenced_blocks(markdown: str) -> list[Block]:
    """The fenced blocks, with the skip mark on the line before each, if any."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), None)
        assert end is not None, f"README.md:{index + 1}: a fence that is never closed"
        mark = SKIP_MARK.search(lines[index - 1]) if index else None
        blocks.append(
            Block(
                line=index + 1,
                language=opening["info"].strip(),
                text="\n".join(lines[index + 1 : end]),
                skip=mark["reason"] if mark else None,
            )
        )
        index = end + 1
    return blocks


def commands(text: str) -> list[str]:
    """The block's commands: a line, or several joined by a trailing backslash or an open
    quote (a JSON body over several lines); comment lines left out."""
    found: list[str] = []
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if words:
            found.append(pending)
        pending = ""
    assert not pending, f"a command that never ends: {pending!r}"
    return found


def program(command: str) -> str:
    """The program a command runs (after any VAR=value assignments)."""
    words = shlex.split(command, comments=True)
    return next((word for word in words if "=" not in word.split("/")[0]), "")


def substitute(command: str, api_port: int, emulator_port: int) -> str:
    """The command as the test runs it: its ports, and curl failing on an error answer."""
    command = re.sub(rf"\b(localhost|127\.0\.0\.1):{API_PORT}\b", rf"\1:{api_port}", command)
    command = re.sub(
        rf"\b(localhost|127\.0\.0\.1):{EMULATOR_PORT}\b", rf"\1:{emulator_port}", command
    )
    if program(command) == "curl":
        command = command.replace("curl ", "curl --fail-with-body -sS ", 1)
    return command


def line_pattern(line: str) -> re.Pattern[str]:
    """A sample output line as a pattern: its variable parts match any value of their kind."""
    combined = "|".join(f"({source})" for source, _ in VARIABLE)
    parts: list[str] = []
    position = 0
    for match in re.finditer(combined, line):
        assert match.lastindex is not None
        parts.append(re.escape(line[position : match.start()]))
        parts.append(VARIABLE[match.lastindex - 1][1])
        position = match.end()
    parts.append(re.escape(line[position:]))
    return re.compile("".join(parts))


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Transcript:
    """What the test ran and skipped, printed as it goes (``-s`` or ``-rP`` to see it); the
    skipped blocks are also listed in the terminal summary (tests/docs/conftest.py)."""

    def __init__(self, record: Callable[[str, object], None]) -> None:
        self.skipped: list[str] = []
        self.record = record

    def say(self, message: str) -> None:
        print(message, flush=True)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append(f"{where}: {reason}")
        self.say(f"SKIPPED {where}: {reason}")

    def summary(self) -> None:
        self.record(NOT_RUN, self.skipped)


@dataclass
class Stack:
    """``./bin/start_all.sh`` as the README starts it, in the background."""

    process: subprocess.Popen[bytes]
    log: Path
    api_port: int
    emulator_port: int

    def wait_ready(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.api_port}/ready"
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"start_all.sh exited:\n{self.log.read_text()}"
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"no 200 from {url} in {timeout_s} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        """Ctrl-C to its process group, as a terminal sends it; killed if it hangs."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            log = self.log.read_text()
            raise AssertionError(f"start_all.sh ignored Ctrl-C for 60 s:\n{log}") from None


def blocks_environment(tmp_path: Path, dataset_path: Path) -> dict[str, str]:
    """A reader's shell: none of this test session's LMF_*/AWS_* settings, no PYTHONPATH or
    active venv; the reference dataset, free ports, and a docker that does not answer."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"}
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in dropped and not name.startswith(("LMF_", "AWS_", "_LMF_"))
    }
    no_docker = tmp_path / "no-docker"
    no_docker.mkdir()
    (no_docker / "docker").write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n"
    )
    (no_docker / "docker").chmod(0o755)
    env["PATH"] = f"{no_docker}{os.pathsep}{env.get('PATH', '')}"
    # the uv this test session's venv has, when the reader's PATH has none (no PyPI install)
    own_uv = Path(sys.executable).parent / "uv"
    if "UV" not in env and shutil.which("uv", path=env["PATH"]) is None and own_uv.exists():
        env["UV"] = str(own_uv)
    env.update(
        LMF_API_PORT=str(free_port()),
        LMF_EMBEDDED_PORT=str(free_port()),
        LMF_DATASET_PATH=str(dataset_path),
    )
    return env


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("NOT TESTED: the README's blocks need git and a git checkout to clone")
    target = tmp_path / "local-ml-flow"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
    return target


def test_the_readme_blocks_run_as_written(
    clone: Path, tmp_path: Path, dataset_path: Path, record_property: Callable[[str, object], None]
):
    markdown = README.read_text()
    blocks = fenced_blocks(markdown)
    out = Transcript(record_property)
    env = blocks_environment(tmp_path, dataset_path)
    api_port, emulator_port = int(env["LMF_API_PORT"]), int(env["LMF_EMBEDDED_PORT"])
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    out.say(f"clone of {ROOT} (HEAD) in {clone}; ports: API {api_port}, AWS {emulator_port}")
    if any(changed):
        out.say(f"note: {len([c for c in changed if c])} changed file(s) are not in the clone")

    others = [f"README.md:{b.line} ```{b.language}" for b in blocks if b.language not in LANGUAGES]
    assert not others, f"use ```bash (run by this test) or ```text (not run): {others}"

    stack: Stack | None = None
    started = time.monotonic()
    try:
        for block in (b for b in blocks if b.language == "bash"):
            where = f"README.md:{block.line}"
            if block.skip:
                out.skip(where, block.skip)
                continue
            needed = {program(c) for c in commands(block.text)} & set(OPTIONAL_TOOLS)
            missing = sorted(tool for tool in needed if shutil.which(tool) is None)
            if missing:
                out.skip(where, f"needs {', '.join(missing)}, not installed here")
                continue
            script: list[str] = []
            for command in commands(block.text):
                name = program(command)
                if name == "git" and command.split()[1:2] == ["clone"]:
                    out.say(f"{where}: {command.strip()!r} is the clone made above")
                elif name == "./bin/test.sh":
                    out.skip(where, f"{command.strip()!r}: it would run this test again")
                elif name == "./bin/start_all.sh":
                    run_script(script, where, clone, env, out)
                    script = []
                    assert stack is None, f"{where}: a second ./bin/start_all.sh"
                    stack = start(command, clone, env, tmp_path / "start_all.log", out)
                    stack.wait_ready()
                    out.say(f"{where}: ready after {time.monotonic() - started:.1f} s")
                    check_sample_output(markdown, stack.log)
                else:
                    script.append(substitute(command, api_port, emulator_port))
            run_script(script, where, clone, env, out)
        assert stack is not None, "the README never runs ./bin/start_all.sh"
        # what the README promises the blocks leave behind
        api = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{api}/result/local-ml-flow-data", timeout=10).json() == {
            "content": "65.29%"
        }
        datasets = httpx.get(f"{api}/datasets", timeout=10).json()["datasets"]
        assert any(d["name"] == "iris" and d["current_run"] for d in datasets), datasets
    finally:
        code = stack.stop() if stack is not None else 0
        out.summary()
    assert stack is not None
    log = stack.log.read_text()
    assert code == 0, f"start_all.sh exited with {code} on Ctrl-C:\n{log[-3000:]}"
    assert port_is_free(api_port), "the API still listens after Ctrl-C"
    assert port_is_free(emulator_port), "the emulator still listens after Ctrl-C"
    out.say(f"done in {time.monotonic() - started:.1f} s; start_all.sh exited with 0")


def start(command: str, clone: Path, env: dict[str, str], log: Path, out: Transcript) -> Stack:
    """The README's start_all.sh line, in the background in its own process group."""
    out.say(f"background: {command.strip()!r} with LMF_API_PORT={env['LMF_API_PORT']}")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            # SIGINT at its default even if this process inherited it ignored: bash cannot
            # trap a signal that was ignored when it started
            ["env", "--default-signal=INT", "bash", "-c", command],
            cwd=clone,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Stack(process, log, int(env["LMF_API_PORT"]), int(env["LMF_EMBEDDED_PORT"]))


def run_script(
    script: list[str], where: str, clone: Path, env: dict[str, str], out: Transcript
) -> None:
    """Commands of one block, in one fresh shell from the clone's root; any failure fails."""
    if not script:
        return
    began = time.monotonic()
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", "\n".join(script)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    shown = "\n".join(f"  $ {line}" for line in "\n".join(script).splitlines())
    out.say(f"{where} ({time.monotonic() - began:.1f} s):\n{shown}\n{done.stdout[-2000:]}")
    assert done.returncode == 0, (
        f"{where} exited with {done.returncode}:\n{shown}\n{done.stdout}\n{done.stderr}"
    )


def check_sample_output(markdown: str, log: Path) -> None:
    """Each ``==> `` line of the README's sample output is one start_all.sh printed."""
    printed = log.read_text().splitlines()
    samples = [
        line
        for block in fenced_blocks(markdown)
        if block.language == "text"
        for line in block.text.splitlines()
        if line.startswith("==> ")
    ]
    assert samples, "the README shows no sample output of ./bin/start_all.sh"
    missing = [s for s in samples if not any(line_pattern(s).fullmatch(p) for p in printed)]
    assert not missing, "sample output lines start_all.sh did not print:\n" + "\n".join(
        [*missing, "--- it printed:", *printed]
    )
