"""The Lambda zip: contents, limits, versions, reproducibility.

The zip is built once per session (bin/build_lambdas.sh, no Docker, with the modules' bytecode as
by default; in the exhaustive suite once more with LMF_LAMBDA_BYTECODE=0). That it really runs
the pipeline is proven here (both functions, every model kind, run from the unzipped package on
CPython 3.12 in a read-only tree: what the build drops is never imported; the shipped bytecode
is what runs, nothing is compiled) and in test_terraform (applied with Terraform to MiniStack
on CPython 3.12, both functions invoked through the Lambda API).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import emulator_client

from .conftest import (
    BUILD_SCRIPT,
    LAMBDAS_DIR,
    TERRAFORM_DIR,
    LambdaZip,
    find_python312,
    missing,
)

DATA_BUCKET = "local-ml-flow-data"
MODELS_BUCKET = "local-ml-flow-models"
DATASET_KEY = "housing.csv"

LAMBDA_MAX_UNZIPPED = 250 * 1024 * 1024
# Top-level packages that must never ship in the function code.
FORBIDDEN_TOP_LEVEL = {
    "fastapi",
    "starlette",
    "uvicorn",
    "moto",
    "ministack",
    "boto3",
    "botocore",
    "pip",
}


def load_packager() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_zip", LAMBDAS_DIR / "package_zip.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def handlers_in_terraform() -> dict[str, str]:
    """{function key: handler} as written in terraform/main.tf."""
    text = (TERRAFORM_DIR / "main.tf").read_text()
    found = dict(re.findall(r'(\w+) = \{\s*name\s*=[^\n]*\n\s*handler\s*=\s*"([\w.]+)"', text))
    assert set(found) == {"ingestion", "inference"}, found
    return found


# ---------------------------------------------------------------- the packager ---------


def make_tree(root: Path) -> None:
    files = {
        "pkg/__init__.py": "x = 1\n",
        "pkg/core.so": "binary",
        "pkg/_kernels.pyx.tp": "dropped\n",
        "pkg/lib/libpkgmath.a": "dropped",
        "pkg/_testing.py": "kept\n",
        "pkg/testing/__init__.py": "kept\n",
        "pkg/tests/test_core.py": "dropped\n",
        "pkg/__pycache__/core.cpython-312.pyc": "dropped",
        "pkg/core.pyi": "dropped\n",
        "pkg/include/core.h": "dropped\n",
        "bin/tool": "#!/some/build/python\n",
        "pkg-1.0.dist-info/METADATA": "Name: pkg\n",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_trim_drops_tests_caches_stubs_and_scripts_but_keeps_testing_modules(
    tmp_path: Path,
) -> None:
    packager = load_packager()
    make_tree(tmp_path)
    assert packager.trim(tmp_path) > 0
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "pkg-1.0.dist-info/METADATA",
        "pkg/__init__.py",
        "pkg/_testing.py",
        "pkg/core.so",
        "pkg/testing/__init__.py",
    ]


def test_zip_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    packager = load_packager()
    make_tree(tmp_path / "tree")
    first = tmp_path / "first.zip"
    second = tmp_path / "second.zip"
    packager.write_zip(tmp_path / "tree", first)
    for path in (tmp_path / "tree").rglob("*"):  # new mtimes: must not matter
        os.utime(path, (1_700_000_000, 1_700_000_000))
    packager.write_zip(tmp_path / "tree", second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_packager_fails_over_the_size_limit(tmp_path: Path) -> None:
    packager = load_packager()
    make_tree(tmp_path / "tree")
    out = tmp_path / "out.zip"
    assert packager.main([str(tmp_path / "tree"), str(out), "--max-unzipped-bytes", "10"]) == 1
    assert not out.exists()


def an_unstripped_library() -> Path:
    """A small extension module that still has its symbol table (numpy's, in the venv)."""
    import numpy

    return next(Path(numpy.__file__).parent.glob("linalg/lapack_lite.*.so"))


def gnu_strip() -> str:
    found = shutil.which("strip")
    version = (
        subprocess.run([found, "--version"], capture_output=True, text=True) if found else None
    )
    if found is None or version is None or not version.stdout.startswith("GNU strip"):
        pytest.skip("NOT TESTED: no GNU strip (binutils) on this machine")
    return found


def test_strip_takes_the_symbols_of_extension_modules_never_of_vendored_libraries(
    tmp_path: Path,
) -> None:
    packager = load_packager()
    library = an_unstripped_library().read_bytes()
    assert ".symtab" in (packager.elf_sections(library) or set())
    module = tmp_path / "pkg" / "_core.cpython-312-x86_64-linux-gnu.so"
    vendored = tmp_path / "pkg.libs" / "libcore-1a2b3c.so.1"
    for path in (module, vendored):
        path.parent.mkdir(parents=True)
        path.write_bytes(library)
    (tmp_path / "pkg" / "__init__.py").write_text("")

    removed, count, refused = packager.strip_extension_modules(tmp_path, gnu_strip())

    assert (count, refused) == (1, [])
    assert removed == len(library) - module.stat().st_size > 0
    stripped = module.read_bytes()
    assert ".symtab" not in (packager.elf_sections(stripped) or set())
    assert ".dynsym" in (packager.elf_sections(stripped) or set())  # still linkable
    assert packager.elf_loadable(stripped)
    assert vendored.read_bytes() == library  # *.libs: never touched
    assert packager.elf_sections(b"not an ELF file") is None


def test_elf_loadable_refuses_a_segment_off_its_page(tmp_path: Path) -> None:
    """The loader's rule ("ELF load command address/offset not page-aligned") that a strip
    of a patchelf-ed library breaks."""
    packager = load_packager()
    data = bytearray(an_unstripped_library().read_bytes())
    assert packager.elf_loadable(bytes(data))
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        entry = phoff + i * phentsize
        if (
            struct.unpack_from("<I", data, entry)[0] == 1
            and struct.unpack_from("<Q", data, entry + 8)[0]
        ):  # a PT_LOAD not at offset 0: move its file offset by 8 bytes
            struct.pack_into(
                "<Q", data, entry + 8, struct.unpack_from("<Q", data, entry + 8)[0] + 8
            )
            break
    else:
        raise AssertionError("no PT_LOAD segment past the start of the file")
    assert not packager.elf_loadable(bytes(data))


def test_bytecode_is_unchecked_hash_for_cpython_312_only(tmp_path: Path) -> None:
    """The shipped .pyc are valid whatever the timestamps, and from a CPython 3.12 only."""
    packager = load_packager()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("VALUE = frozenset({'a', 'b', 'c'})\n")
    with pytest.raises(SystemExit, match=r"needs a CPython 3\.12"):
        packager.compile_bytecode(tmp_path, sys.executable)  # the venv's 3.11
    added = packager.compile_bytecode(tmp_path, python312_or_skip())
    pyc = tmp_path / "pkg" / "__pycache__" / "__init__.cpython-312.pyc"
    assert added == pyc.stat().st_size > 16
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, source never checked (PEP 552)


def python312_or_skip() -> str:
    python312 = find_python312()
    if python312 is None:
        pytest.skip("NOT TESTED: no CPython 3.12 to compile with (LMF_PYTHON312)")
    return python312


def test_bytecode_is_the_same_wherever_the_tree_is_built(tmp_path: Path) -> None:
    """Two builds give the same zip: the bytecode names no build directory (code objects name
    their file under /var/task) and no hash seed shows (a frozenset's order)."""
    packager = load_packager()
    python312 = python312_or_skip()
    trees = [tmp_path / "a", tmp_path / "somewhere" / "else"]
    for tree in trees:
        (tree / "pkg").mkdir(parents=True)
        (tree / "pkg" / "__init__.py").write_text(
            "WORDS = frozenset({'alpha', 'beta', 'gamma', 'delta'})\n"
            "def where() -> str:\n    return __file__\n"
        )
        packager.compile_bytecode(tree, python312)
    first, second = (tree / "pkg" / "__pycache__" / "__init__.cpython-312.pyc" for tree in trees)
    assert first.read_bytes() == second.read_bytes()
    assert b"/var/task/pkg/__init__.py" in first.read_bytes()


# Put before a script run by CPython 3.12: COMPILED lists the files compiled from source while
# it runs (a module with a valid .pyc is loaded without compiling its source).
RECORD_COMPILES = """
import importlib.machinery

_compile = importlib.machinery.SourceFileLoader.source_to_code
COMPILED = []


def source_to_code(self, data, path, *, _optimize=-1):
    COMPILED.append(path)
    return _compile(self, data, path, _optimize=_optimize)


importlib.machinery.SourceFileLoader.source_to_code = source_to_code
"""


def read_only(tree: Path) -> None:
    """Every folder of the tree made read-only (as /var/task; root ignores it, -B does not)."""
    for folder in [tree, *(p for p in tree.rglob("*") if p.is_dir())]:
        folder.chmod(0o555)


def writable(tree: Path) -> None:
    """Undo `read_only` (so that the temporary directory can be removed)."""
    for folder in [tree, *(p for p in tree.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)


def run_as_in_var_task(
    python: str, code: str, tree: Path, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``python -I -B -c code tree`` with the tree read-only, as Lambda's /var/task: -I, no
    PYTHONPATH, no user site, not the current folder; -B and the read-only tree, no bytecode
    written. ``kwargs`` go to subprocess.run."""
    read_only(tree)
    try:
        return subprocess.run(
            [python, "-I", "-B", "-c", code, str(tree)], capture_output=True, text=True, **kwargs
        )
    finally:
        writable(tree)


def test_shipped_bytecode_is_what_runs_on_a_read_only_tree(tmp_path: Path) -> None:
    """The .pyc are used as they are: the source is neither compiled nor even compared with
    them (an edited source changes nothing), and only a module without one is compiled."""
    packager = load_packager()
    python312 = python312_or_skip()
    tree = tmp_path / "task"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("VALUE = 'compiled at build time'\n")
    packager.compile_bytecode(tree, python312)
    (tree / "pkg" / "__init__.py").write_text("VALUE = 'edited since'\n")  # hash not checked
    (tree / "pkg" / "late.py").write_text("VALUE = 'no bytecode'\n")  # added after the build
    code = RECORD_COMPILES + (
        "import json, sys\nsys.path.insert(0, sys.argv[1])\nimport pkg, pkg.late\n"
        "print(json.dumps([pkg.VALUE, pkg.late.VALUE, COMPILED]))\n"
    )
    proc = run_as_in_var_task(python312, code, tree, check=True)
    value, late, compiled = json.loads(proc.stdout)
    assert value == "compiled at build time"
    assert late == "no bytecode"
    assert compiled == [str(tree / "pkg" / "late.py")]
    assert not (tree / "pkg" / "__pycache__" / "late.cpython-312.pyc").exists()


def test_build_refuses_an_unknown_bytecode_setting_before_anything(tmp_path: Path) -> None:
    env = {**os.environ, "LMF_LAMBDA_BYTECODE": "yes", "LMF_LAMBDA_BUILD_DIR": str(tmp_path / "b")}
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(tmp_path / "out.zip")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "LMF_LAMBDA_BYTECODE must be 0 or 1" in proc.stderr
    assert "'yes'" in proc.stderr
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------- the real zip ---------

# The default build (bytecode shipped) and, in the exhaustive suite, the bytecode-free one.
VARIANTS = pytest.mark.parametrize(
    "bytecode",
    [True, pytest.param(False, marks=pytest.mark.full)],
    ids=["default", "LMF_LAMBDA_BYTECODE=0"],
)


def built_zip(request: pytest.FixtureRequest, bytecode: bool) -> LambdaZip:
    """The zip of a variant; the default one must hold bytecode (a CPython 3.12 was found)."""
    if not bytecode:
        built: LambdaZip = request.getfixturevalue("lambda_zip_without_bytecode")
        assert not built.bytecode
        return built
    built = request.getfixturevalue("lambda_zip")
    if not built.bytecode:
        missing("NOT TESTED: no CPython 3.12 here, so the default build shipped no bytecode")
    return built


def bytecode_of(source: str) -> str:
    """The .pyc that CPython 3.12 reads for a module's source file (PEP 3147)."""
    folder, _, name = source.rpartition("/")
    return f"{folder}/__pycache__/{name.removesuffix('.py')}.cpython-312.pyc".lstrip("/")


@pytest.mark.slow
@VARIANTS
def test_zip_holds_the_functions_and_only_what_they_need(
    bytecode: bool, request: pytest.FixtureRequest
) -> None:
    lambda_zip = built_zip(request, bytecode)
    with zipfile.ZipFile(lambda_zip.path) as zf:
        infos = zf.infolist()
    names = [info.filename for info in infos]
    unzipped = sum(info.file_size for info in infos)
    top_level = {name.split("/")[0] for name in names}

    for module in ("handlers", "pipeline", "settings", "storage", "aws", "errors", "invoke"):
        assert f"local_ml_flow/{module}.py" in names
    assert not [n for n in names if n.startswith("local_ml_flow/api/")]
    assert "local_ml_flow/cli.py" not in names
    for module in ("embedded", "emulator_main", "lambda_package", "statedir"):
        assert f"local_ml_flow/{module}.py" not in names
    for package in (
        "pandas",
        "numpy",
        "sklearn",
        "scipy",
        "joblib",
        "pydantic",
        "pydantic_settings",
        "pydantic_core",
    ):
        assert package in top_level, package
    assert not FORBIDDEN_TOP_LEVEL & top_level
    sources = {n for n in names if n.endswith(".py")}
    compiled = {n for n in names if "__pycache__/" in n or n.endswith((".pyc", ".pyo"))}
    if bytecode:  # one .pyc for CPython 3.12 per module, and no other
        assert compiled == {bytecode_of(n) for n in sources}
        assert len(compiled) > 1000
    else:
        assert compiled == set()
    assert not [n for n in names if "/tests/" in n]
    # manylinux wheels for CPython 3.12 on x86_64, whatever the build machine is
    assert [n for n in names if re.search(r"\.cpython-312-x86_64-linux-gnu\.so$", n)]
    assert not [n for n in names if re.search(r"\.cpython-3(?!12)\d+-.*\.so$", n)]

    assert unzipped < LAMBDA_MAX_UNZIPPED
    assert f"unzipped: {unzipped / 1024 / 1024:.1f} MB" in lambda_zip.build_log
    assert "limit 250.0 MB" in lambda_zip.build_log
    assert "zipped:" in lambda_zip.build_log


def dropped_entries() -> list[str]:
    """The DROP list of bin/build_lambdas.sh: paths (globs) removed from the dependencies."""
    block = re.search(r"^DROP=\((.*?)^\)", BUILD_SCRIPT.read_text(), re.MULTILINE | re.DOTALL)
    assert block, "bin/build_lambdas.sh has no DROP list"
    text = re.sub(r"#[^\n]*", "", block[1])
    return [entry.strip("'\"") for entry in text.split()]


@pytest.mark.slow
def test_what_the_build_drops_is_not_in_the_zip(lambda_zip: LambdaZip) -> None:
    entries = dropped_entries()
    assert "scipy/signal" in entries
    assert "wcwidth" in entries
    with zipfile.ZipFile(lambda_zip.path) as zf:
        names = zf.namelist()
    for entry in entries:
        pattern = re.compile(re.escape(entry).replace(r"\*", "[^/]*") + r"(/|$)")
        assert not [n for n in names if pattern.match(n)], entry
    # what they belong to is still there (only the never-imported parts went)
    for kept in ("scipy/stats/__init__.py", "scipy/io/__init__.py", "narwhals/__init__.py"):
        assert kept in names


@pytest.mark.slow
def test_extension_modules_are_stripped_and_every_library_loads(lambda_zip: LambdaZip) -> None:
    """The loader's page-alignment rule holds for every ELF file; only the wheels' vendored
    libraries (``*.libs/``, patched by auditwheel) keep their symbol tables."""
    packager = load_packager()
    if "stripped: nothing" in lambda_zip.build_log:
        pytest.skip("NOT TESTED: no GNU strip on this machine, the build kept the symbols")
    with zipfile.ZipFile(lambda_zip.path) as zf:
        libraries = {n: zf.read(n) for n in zf.namelist() if re.search(r"\.so(\.|$)", n)}
    assert len(libraries) > 100
    with_symbols = []
    for name, data in libraries.items():
        assert packager.elf_loadable(data), name
        sections = packager.elf_sections(data)
        assert sections is not None, name
        if ".symtab" in sections:
            with_symbols.append(name)
    assert with_symbols  # the vendored OpenBLAS: never stripped (it would not load)
    assert all(name.split("/")[0].endswith(".libs") for name in with_symbols), with_symbols


# Run in the unzipped package by the Python 3.12 of MiniStack's virtualenv, with only the
# package and what the Lambda runtime provides (boto3) importable: both functions, every model
# kind, then where each imported module came from and which ones were compiled from source.
RUN_BOTH_FUNCTIONS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from local_ml_flow import handlers
results = []
for model, feature_set in (("linear", "all"), ("gradient_boosting", "seed")):
    trained = handlers.ingestion_handler({"model": model, "feature_set": feature_set}, None)
    scored = handlers.inference_handler({}, None)
    results.append({"model": model, "run_id": trained["run_id"], **scored})
modules = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}
print(json.dumps({"results": results, "modules": modules, "compiled": COMPILED}))
"""
RUN_FROM_PACKAGE = RECORD_COMPILES + RUN_BOTH_FUNCTIONS
# What the python3.12 Lambda runtime provides (and MiniStack's virtualenv, as the test runs)
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3"}


@pytest.mark.slow
@VARIANTS
def test_functions_run_from_the_unzipped_package_on_cpython_312(
    bytecode: bool,
    request: pytest.FixtureRequest,
    ministack_python312: str,
    private_moto: str,
    dataset_bytes: bytes,
    tmp_path: Path,
) -> None:
    """Every model kind trains and scores from the package as built: a part the build drops
    (DROP in bin/build_lambdas.sh) and that a function needs fails here, not in production.
    With the bytecode shipped (the default), nothing of the package is compiled on the way;
    without it, every module the functions load is (what each Lambda cold start pays)."""
    lambda_zip = built_zip(request, bytecode)
    task = tmp_path / "task"
    with zipfile.ZipFile(lambda_zip.path) as zf:
        zf.extractall(task)
    s3 = emulator_client("s3", private_moto)
    for bucket in (DATA_BUCKET, MODELS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=DATA_BUCKET, Key=DATASET_KEY, Body=dataset_bytes)
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ENDPOINT_URL": private_moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    proc = run_as_in_var_task(
        ministack_python312, RUN_FROM_PACKAGE, task, env=env, cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    linear, boosting = out["results"]
    assert linear["r2"] == pytest.approx(0.6529, abs=1e-4)
    assert linear["score"] == "65.29%"
    assert 0 < boosting["r2"] < 1
    score = s3.get_object(Bucket=DATA_BUCKET, Key="score.txt")["Body"].read().decode()
    assert score == boosting["score"]

    loaded = {f for f in out["modules"].values() if f and f.startswith(str(task))}
    compiled = {path for path in out["compiled"] if path.startswith(str(task))}
    if bytecode:
        assert compiled == set()
        assert not [f for f in loaded if f.endswith(".pyc")]  # the sources are kept
    else:  # every module loaded was compiled (and some whose import failed: dateutil.tz.win)
        assert compiled >= {f for f in loaded if f.endswith(".py")}
        assert str(task / "local_ml_flow" / "handlers.py") in compiled
    assert len([f for f in loaded if f.endswith(".py")]) > 1000  # both functions ran

    where_stdlib = "import sysconfig; print(sysconfig.get_paths()['stdlib'])"
    stdlib = subprocess.run(
        [ministack_python312, "-I", "-c", where_stdlib],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outside = {
        name.split(".")[0]
        for name, file in out["modules"].items()
        if file and not file.startswith((str(task), stdlib))
    }
    assert outside <= RUNTIME_PROVIDED, outside - RUNTIME_PROVIDED
    assert out["modules"]["local_ml_flow.handlers"].startswith(str(task))
    assert out["modules"]["sklearn.ensemble"].startswith(str(task))


# ---------------------------------------------------------------- one lock -------------

SHARED_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "joblib", "pydantic", "skops")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
def test_zip_and_venv_run_the_same_library_versions(lambda_zip: LambdaZip) -> None:
    """A model written by the functions is read by the API with the very same libraries."""
    with zipfile.ZipFile(lambda_zip.path) as zf:
        metadata = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        in_zip: dict[str, str] = {}
        for name in metadata:
            headers = zf.read(name).decode()
            dist = re.search(r"^Name: (.+)$", headers, re.MULTILINE)
            version = re.search(r"^Version: (.+)$", headers, re.MULTILINE)
            assert dist is not None
            assert version is not None
            in_zip[canonical(dist[1].strip())] = version[1].strip()
    in_venv = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    for library in SHARED_LIBRARIES:
        assert library in in_zip, f"{library} missing from the zip"
        assert in_zip[library] == in_venv[library], library
    shared = set(in_zip) & set(in_venv)
    assert {name: in_zip[name] for name in shared} == {name: in_venv[name] for name in shared}
