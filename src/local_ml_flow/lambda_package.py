"""The functions' source package for the embedded emulator: the handlers' code, zipped.

The embedded emulator (MiniStack) runs a zip function as a worker process on its own
interpreter, the project's virtualenv: numpy, pandas, scikit-learn and boto3 come from
there, as a Lambda layer would provide them, so the package holds only ``local_ml_flow``
without the parts a function never imports (the API, the CLI, the emulator). The zip is
reproducible (sorted entries, fixed timestamps), so its sha256 changes only with the code
and provisioning updates a function only when its code really changed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import local_ml_flow

PACKAGE = "local_ml_flow"
# What a function never imports (the same cut as bin/build_lambdas.sh).
EXCLUDED = frozenset(
    {
        "api",
        "cli.py",
        "embedded.py",
        "emulator_main.py",
        "lambda_package.py",
        "statedir.py",
        "__pycache__",
    }
)
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def package_root() -> Path:
    """The directory of the installed ``local_ml_flow`` package."""
    return Path(local_ml_flow.__file__).resolve().parent


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in EXCLUDED or "__pycache__" in relative.parts:
            continue
        if path.is_file() and path.suffix not in {".pyc", ".pyo"}:
            found.append(path)
    return found


def source_zip(root: Path | None = None) -> bytes:
    """The zip of the handlers' package, byte for byte the same for the same sources."""
    root = root or package_root()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _files(root):
            name = f"{PACKAGE}/{path.relative_to(root).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (0o100644) << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def code_sha256(package: bytes) -> str:
    """The package's hash as the Lambda API reports it (``CodeSha256``: base64 of sha256)."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()
