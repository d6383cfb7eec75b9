"""Generate the Python code of `protos/` into `serving/_generated/` (git-ignored).

The generated code is a build product, never edited or committed: `bash scripts/setup.sh` runs
`python -m serving.build_protos`, and `serving.protos` runs `ensure_generated()` on import, so
a fresh clone works either way. A stamp (sha256 of every .proto and the grpcio-tools version)
makes re-runs free; a file lock serialises concurrent builders, and the new tree is built in a
temporary folder and renamed into place, so no reader ever sees half a build.

protoc names Python modules after the .proto paths (`vpt/serving/v1/...`), which would clash
with the core `vpt` package, so the imports between generated modules are rewritten to
`serving._generated.vpt...` (the proto package names on the wire stay `vpt.serving.v1`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import sys
import tempfile
from importlib import metadata, resources
from pathlib import Path

SERVING = Path(__file__).resolve().parent
REPO = SERVING.parent
PROTO_ROOT = REPO / "protos"
GENERATED = SERVING / "_generated"
STAMP = GENERATED / ".stamp"
_IMPORT_FROM = re.compile(r"^from vpt\.((?:serving|events)\.v1) import ", re.MULTILINE)
_MODULE_PATH = re.compile(r"\bvpt\.((?:serving|events)\.v1)\.(\w+_pb2(?:_grpc)?)\b")


class ProtoBuildError(RuntimeError):
    """protoc failed or the proto sources are missing."""


def proto_files() -> list[Path]:
    files = sorted(PROTO_ROOT.rglob("*.proto"))
    if not files:
        raise ProtoBuildError(f"no .proto files under {PROTO_ROOT}")
    return files


def source_stamp() -> str:
    digest = hashlib.sha256(metadata.version("grpcio-tools").encode())
    for file in proto_files():
        digest.update(file.relative_to(PROTO_ROOT).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def is_up_to_date() -> bool:
    return STAMP.is_file() and STAMP.read_text() == source_stamp()


def _rewrite_imports(folder: Path) -> None:
    for file in folder.rglob("*.py*"):
        if file.suffix not in (".py", ".pyi"):
            continue
        text = file.read_text()
        text = _IMPORT_FROM.sub(r"from serving._generated.vpt.\1 import ", text)
        text = _MODULE_PATH.sub(r"serving._generated.vpt.\1.\2", text)
        file.write_text(text)


def _run_protoc(output: Path) -> None:
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    arguments = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={output}",
        f"--grpc_python_out={output}",
    ]
    if shutil.which("protoc-gen-mypy", path=str(Path(sys.executable).parent)):
        bin_folder = Path(sys.executable).parent
        arguments += [
            f"--plugin=protoc-gen-mypy={bin_folder / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_folder / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={output}",
            f"--mypy_grpc_out={output}",
        ]
    arguments += [str(file.relative_to(PROTO_ROOT)) for file in proto_files()]
    # protoc and its plugins write to file descriptor 2 (the mypy plugin one line per file):
    # keep that for the error message instead of printing it on every build.
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            status = protoc.main(arguments)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        messages = captured.read().decode(errors="replace")
    if status != 0:
        raise ProtoBuildError(f"protoc exited with status {status} for {PROTO_ROOT}:\n{messages}")


def build() -> Path:
    """Regenerate `serving/_generated/` from the protos (unconditionally)."""
    stamp = source_stamp()
    staging = Path(tempfile.mkdtemp(prefix="._generated.", dir=SERVING))
    try:
        _run_protoc(staging)
        _rewrite_imports(staging)
        for folder in [staging, *[p for p in staging.rglob("*") if p.is_dir()]]:
            (folder / "__init__.py").touch()
        (staging / ".stamp").write_text(stamp)
        retired = SERVING / f"._generated.old.{stamp[:8]}"
        if GENERATED.exists():
            shutil.rmtree(retired, ignore_errors=True)
            GENERATED.rename(retired)
        staging.rename(GENERATED)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return GENERATED


def ensure_generated() -> None:
    """Build the generated code if it is missing or older than the protos."""
    if is_up_to_date():
        return
    with (SERVING / ".generated.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_up_to_date():
            build()


def main() -> int:
    ensure_generated()
    print(f"generated code for {len(proto_files())} proto files in {GENERATED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
