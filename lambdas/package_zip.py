"""Trim an installed Lambda package tree and write it as a reproducible zip.

Used by bin/build_lambdas.sh after `pip install --target`. Standard library only.

    python lambdas/package_zip.py BUILD_DIR OUT_ZIP [--max-unzipped-bytes N] [--strip STRIP]
        [--bytecode PYTHON312]

Reproducible: entries are sorted, every timestamp is 1980-01-01 and permissions are
normalised, so the same files give the same zip, byte for byte (with ``--strip``: the same
files and the same strip).

``--strip``: GNU strip (binutils) run with ``--strip-unneeded`` on the Python extension
modules that still carry a symbol table. Never on the libraries the wheels vendor in
``<dist>.libs/`` (OpenBLAS, libgfortran): auditwheel's patchelf moved their segments, and
strip rewrites such a file into one the dynamic loader refuses ("ELF load command
address/offset not page-aligned"); every stripped file is checked for that and kept
unstripped if it fails.

``--bytecode PYTHON``: a CPython 3.12 compiles every module to ``__pycache__/*.cpython-312.pyc``
in ``unchecked-hash`` mode (valid whatever the files' timestamps; reproducible with
``PYTHONHASHSEED=0`` and the files named under ``/var/task``, wherever the tree is built). On
Lambda ``/var/task`` is read-only: without bytecode every cold start compiles what it imports.
Costs about 37 MB unzipped. bin/build_lambdas.sh passes it by default (LMF_LAMBDA_BYTECODE=0:
not).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

# AWS Lambda: 250 MB unzipped (function code + layers), as AWS counts it.
LAMBDA_MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
# Over this a zip cannot be uploaded directly and must go through S3.
LAMBDA_MAX_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
# Where Lambda unpacks the function code.
LAMBDA_TASK_ROOT = "/var/task"

# Directories never needed at run time (test suites, bytecode caches, console scripts
# whose shebang names the build machine's interpreter).
TRIM_DIR_NAMES = frozenset({"tests", "__pycache__"})
TRIM_TOP_LEVEL_DIRS = frozenset({"bin"})
# Type stubs, Cython sources and templates, C/C++ headers and sources, static libraries
# (for building against numpy), stale bytecode.
TRIM_SUFFIXES = frozenset(
    {".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi", ".tp", ".c", ".h", ".cpp", ".a"}
)


def trim(root: Path) -> int:
    """Delete what the functions never load; return the number of bytes removed."""
    removed = 0
    for top in TRIM_TOP_LEVEL_DIRS:
        path = root / top
        if path.is_dir():
            removed += tree_size(path)
            shutil.rmtree(path)
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        for name in list(dirnames):
            if name in TRIM_DIR_NAMES:
                path = Path(dirpath, name)
                removed += tree_size(path)
                shutil.rmtree(path)
                dirnames.remove(name)
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix in TRIM_SUFFIXES:
                removed += path.stat().st_size
                path.unlink()
    return removed


def elf_sections(data: bytes) -> set[str] | None:
    """Section names of a 64-bit little-endian ELF file; None if it is not one."""
    if data[:6] != b"\x7fELF\x02\x01":
        return None
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shnum == 0:
        return set()
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    names = set()
    for name, *_ in headers:
        start = names_offset + name
        names.add(data[start : data.index(b"\0", start)].decode("ascii", "replace"))
    return names


def elf_loadable(data: bytes, page: int = 4096) -> bool:
    """Whether every PT_LOAD segment is page-aligned (offset = address, modulo a page), as
    the dynamic loader requires."""
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, offset, vaddr = struct.unpack_from("<IIQQ", data, phoff + i * phentsize)
        if p_type == 1 and (vaddr - offset) % page:  # PT_LOAD
            return False
    return True


def is_vendored_library(root: Path, path: Path) -> bool:
    """A library a wheel vendors in ``<dist>.libs/`` (patched by auditwheel: never stripped)."""
    return path.relative_to(root).parts[0].endswith(".libs")


def strip_extension_modules(root: Path, strip: str) -> tuple[int, int, list[str]]:
    """``strip --strip-unneeded`` the extension modules that carry a symbol table.

    Returns (bytes removed, files stripped, files left as they were because the stripped
    copy would not load).
    """
    removed = stripped = 0
    refused: list[str] = []
    for path in iter_files(root):
        if ".so" not in path.suffixes or is_vendored_library(root, path):
            continue
        data = path.read_bytes()
        sections = elf_sections(data)
        if sections is None or ".symtab" not in sections:
            continue
        tmp = path.with_name(path.name + ".strip")
        subprocess.run([strip, "--strip-unneeded", "-o", str(tmp), str(path)], check=True)
        if not elf_loadable(tmp.read_bytes()):
            tmp.unlink()
            refused.append(path.relative_to(root).as_posix())
            continue
        removed += len(data) - tmp.stat().st_size
        stripped += 1
        tmp.replace(path)
    return removed, stripped, refused


def compile_bytecode(root: Path, python: str) -> int:
    """Unchecked-hash bytecode of every module under root, by ``python`` (a CPython 3.12);
    returns the bytes added."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != "cpython-312":
        raise SystemExit(f"error: --bytecode needs a CPython 3.12, {python} is {version}")
    before = tree_size(root)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [python, "-m", "compileall", "-q", "-j", "0"]  # not -I: it ignores PYTHONHASHSEED
    # -d: each code object names its file under /var/task (Lambda's task root), not under the
    # build directory, which would make two builds differ (an import corrects the name anyway)
    command += ["-d", LAMBDA_TASK_ROOT, "--invalidation-mode", "unchecked-hash", str(root)]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return tree_size(root) - before


def tree_size(root: Path) -> int:
    """Total size in bytes of the regular files under root."""
    return sum(path.stat().st_size for path in iter_files(root))


def iter_files(root: Path) -> Iterator[Path]:
    """Regular files under root, in a stable (sorted) order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                yield path


def write_zip(root: Path, out: Path) -> int:
    """Zip every file under root into out, reproducibly; return the unzipped size."""
    files = sorted(iter_files(root), key=lambda p: p.relative_to(root).as_posix())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    unzipped = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr carries the mode bits
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            data = path.read_bytes()
            unzipped += len(data)
            zf.writestr(info, data, compresslevel=6)
    tmp.replace(out)
    return unzipped


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mb(n: int) -> str:
    """Bytes as MB (MiB, as AWS counts its limits)."""
    return f"{n / 1024 / 1024:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    """Trim, zip, report sizes; exit 1 if the unzipped size is over the Lambda limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("out_zip", type=Path)
    parser.add_argument("--max-unzipped-bytes", type=int, default=LAMBDA_MAX_UNZIPPED_BYTES)
    parser.add_argument("--strip", help="GNU strip, for the extension modules' symbol tables")
    parser.add_argument("--bytecode", help="a CPython 3.12, to ship the modules' bytecode")
    args = parser.parse_args(argv)

    root: Path = args.build_dir
    if not root.is_dir():
        parser.error(f"not a directory: {root}")
    before = tree_size(root)
    removed = trim(root)
    print(f"trimmed:  {mb(removed)} (tests, caches, stubs, sources, build-only files)")
    if args.strip:
        saved, count, refused = strip_extension_modules(root, args.strip)
        print(f"stripped: {mb(saved)} (symbol tables of {count} extension modules)")
        for name in refused:
            print(f"note:     {name} left unstripped: stripped, it would not load")
    else:
        print("stripped: nothing (no GNU strip found: extension modules keep their symbols)")
    if args.bytecode:
        added = compile_bytecode(root, args.bytecode)
        print(f"bytecode: {mb(added)} (unchecked-hash .pyc for CPython 3.12)")
    else:
        print("bytecode: none (a cold start in a read-only /var/task compiles what it imports)")
    unzipped = write_zip(root, args.out_zip)
    zipped = args.out_zip.stat().st_size

    print(
        f"unzipped: {mb(unzipped)} ({unzipped} bytes; limit {mb(args.max_unzipped_bytes)};"
        f" {mb(before)} before trimming and stripping)"
    )
    print(f"zipped:   {mb(zipped)} ({zipped} bytes)")
    print(f"sha256:   {sha256_of(args.out_zip)}")
    print(f"zip:      {args.out_zip}")
    if zipped > LAMBDA_MAX_DIRECT_UPLOAD_BYTES:
        print("note:     over 50 MB zipped: deploy it through S3 (Terraform does)")
    if unzipped > args.max_unzipped_bytes:
        print(
            f"error: unzipped size {mb(unzipped)} exceeds the Lambda limit "
            f"{mb(args.max_unzipped_bytes)}",
            file=sys.stderr,
        )
        args.out_zip.unlink()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
