"""ONNX export of the learned rewards and the Triton model repository that serves them.

The graph takes the generator's raw uint8 videos, so every backend (torch, onnxruntime, Triton)
sees the same bytes:

    video           uint8   (batch, frames, height, width, 3)
    text_embedding  float32 (batch, 384)       text alignment with mean pooling only (MiniLM
                                               sentence embedding, `learned.PromptEmbedder`)
    text_tokens     float32 (batch, 32, 384)   text alignment with attention pooling only
                                               (MiniLM's last token states, zero past the prompt)
    text_mask       float32 (batch, 32)        with `text_tokens`: 1 for a real token, 0 for padding
    scores          float32 (batch,)           one score per video

Export uses the TorchScript exporter (`dynamo=False`) at `OPSET` with a dynamic batch axis.
A Triton repository (Triton docs, `model_repository.md`) holds one folder per model:

    <out>/<name>/config.pbtxt
    <out>/<name>/1/model.onnx

`scores` is rank 1 per batch, so its Triton dims are `[1]` with `reshape { shape: [] }`:
Triton clients see `(batch, 1)`.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from vpt.rewards.model_files import ONNX_FILE, read_reward_config, resolve_models_dir
from vpt.rewards.networks import RewardModelConfig, RewardModelKind, RewardModule, TextPooling

OPSET = 17
"""ONNX opset of the exported graphs (onnxruntime >= 1.14 and Triton's ORT backend run it)."""
VIDEO_INPUT = "video"
TEXT_INPUT = "text_embedding"
TEXT_TOKENS_INPUT = "text_tokens"
TEXT_MASK_INPUT = "text_mask"
SCORES_OUTPUT = "scores"
TRITON_MAX_BATCH = 64
"""`max_batch_size` written into each Triton config."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of an exported reward model, without the batch axis."""

    name: str
    """Tensor name in the ONNX graph and on the Triton wire."""
    triton_type: str
    """Triton data type (TYPE_UINT8, TYPE_FP32)."""
    dims: tuple[int, ...]
    """Shape of one item (no batch axis)."""


def input_specs(config: RewardModelConfig) -> tuple[TensorSpec, ...]:
    """The inputs of a model exported from `config`, in call order."""
    encoder = config.encoder
    video = TensorSpec(
        VIDEO_INPUT, "TYPE_UINT8", (encoder.frames, encoder.height, encoder.width, 3)
    )
    if config.kind is not RewardModelKind.TEXT_ALIGNMENT:
        return (video,)
    if config.text_pooling is TextPooling.MEAN:
        return (video, TensorSpec(TEXT_INPUT, "TYPE_FP32", (config.text_dim,)))
    return (
        video,
        TensorSpec(TEXT_TOKENS_INPUT, "TYPE_FP32", (config.text_tokens, config.text_dim)),
        TensorSpec(TEXT_MASK_INPUT, "TYPE_FP32", (config.text_tokens,)),
    )


def export_onnx(model: RewardModule) -> bytes:
    """The ONNX graph of `model` (dynamic batch), as bytes."""
    specs = input_specs(model.config)
    example: list[torch.Tensor] = [torch.zeros((2, *specs[0].dims), dtype=torch.uint8)]
    example += [torch.ones((2, *spec.dims), dtype=torch.float32) for spec in specs[1:]]
    names = [spec.name for spec in specs]
    dynamic_axes = {name: {0: "batch"} for name in [*names, SCORES_OUTPUT]}
    was_training = model.training
    model.eval()
    with (
        tempfile.TemporaryDirectory(prefix="vpt-onnx-") as folder,
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        # The TorchScript exporter warns about its own deprecation and about slices it cannot
        # constant-fold; neither changes the graph (tests compare it with torch to 1e-5).
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        path = Path(folder) / "model.onnx"
        torch.onnx.export(
            model,
            tuple(example),
            path,
            input_names=names,
            output_names=[SCORES_OUTPUT],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
        graph = path.read_bytes()
    model.train(was_training)
    return graph


def triton_model_config(name: str, config: RewardModelConfig) -> str:
    """The `config.pbtxt` text that serves a reward model with Triton's ONNX Runtime backend."""
    inputs = ",\n".join(
        f'  {{\n    name: "{spec.name}"\n    data_type: {spec.triton_type}\n'
        f"    dims: [ {', '.join(str(d) for d in spec.dims)} ]\n  }}"
        for spec in input_specs(config)
    )
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {TRITON_MAX_BATCH}\n"
        f"input [\n{inputs}\n]\n"
        "output [\n"
        f'  {{\n    name: "{SCORES_OUTPUT}"\n    data_type: TYPE_FP32\n    dims: [ 1 ]\n'
        "    reshape: { shape: [ ] }\n  }\n"
        "]\n"
        "instance_group [ { kind: KIND_CPU, count: 1 } ]\n"
        "dynamic_batching { max_queue_delay_microseconds: 2000 }\n"
    )


def write_triton_repository(
    models_dir: str | Path, out: Path, names: tuple[str, ...] | None = None
) -> list[Path]:
    """Write `out/<name>/config.pbtxt` and `out/<name>/1/model.onnx` for each reward model.

    `names` defaults to every model folder in `models_dir`; returns the model folders written.
    """
    source = resolve_models_dir(models_dir)
    available = sorted(p.name for p in source.iterdir() if (p / ONNX_FILE).is_file())
    chosen = list(names) if names is not None else available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ValueError(
            f"no exported reward model named {', '.join(unknown)} in {source}; "
            f"available: {', '.join(available) or 'none'}"
        )
    written = []
    for name in chosen:
        _, config = read_reward_config(source / name)
        target = out / name
        (target / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name / ONNX_FILE, target / "1" / "model.onnx")
        (target / "config.pbtxt").write_text(triton_model_config(name, config))
        written.append(target)
    return written
