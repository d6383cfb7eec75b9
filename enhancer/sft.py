"""Enhancer stage 1: LoRA SFT of the LLM on (short prompt -> detailed prompt) pairs.

Pairs come from the shapes world's captions (`vpt.world.captions`): for a training attribute
combination (never a held-out one), the user side is a short user-style caption stating 2-4
attributes and the target is a detailed-register caption stating all six plus quality words —
the same two registers the generator was trained on, so the rewrite moves a user's prompt into
the register the generator renders best. The target reuses the user's own word for each stated
attribute (a first run with independently drawn synonyms learned the format but contradicted
the user on 46% of the evaluation prompts: it had to learn synonyms and copying at once).

The loss is the next-token cross-entropy on the target's tokens only (prompt tokens are
masked), as in VPO/Prompt-A-Video's SFT stages (arXiv 2503.20491, 2412.15156). LoRA (Hu et al.,
arXiv 2106.09685) on the attention projections; the base stays frozen.

The run uses the shared loop (`vpt.training.loop`): progress, JSONL metrics, atomic state and
bit-exact resume. Its "model" is a wrapper holding only the LoRA parameters, so the saved state
is the adapter (a few MB), not the 540 MB base. Batches are a pure function of (data seed, step).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from enhancer.base_model import ensure_base_model
from enhancer.embedded import load_causal_lm, load_tokenizer
from vpt.checkpoint import MANIFEST, Manifest, sha256_file
from vpt.config import config_to_dict
from vpt.prompt_rewriting import chat_messages
from vpt.training.loop import LoopConfig, OptimConfig, train_loop
from vpt.world import Attributes, short_caption
from vpt.world.captions import DETAILED_TEMPLATES
from vpt.world.lexicon import (
    BACKGROUND_COLOR_WORDS,
    DIRECTION_PHRASES,
    MOTION_VERBS,
    OBJECT_COLOR_WORDS,
    QUALITY_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
    SPEED_ADJECTIVES,
    SPEED_ADVERBS,
)
from vpt.world.splits import is_held_out
from vpt.world.vocabulary import choose

IGNORE_INDEX = -100
ADAPTER_DIR = "adapter"
WORD = re.compile(r"[a-z0-9']+")
ADJECTIVE_TEMPLATE = 3
"""The detailed template that says speed as an adjective ("video of a fast ...")."""


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter trained on the frozen base."""

    rank: int = 8
    """Rank r of the update B @ A."""
    alpha: int = 16
    """Scale numerator: the update is multiplied by alpha / r."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Linear layers that get an adapter (all must be ones vLLM supports for the model)."""


@dataclass(frozen=True)
class EnhancerSFTConfig:
    """A run of `vpt train enhancer` (stage 1, SFT)."""

    base_model: str | None = None
    """Hugging Face model folder; None uses the converted SmolLM2-135M-Instruct."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """The adapter."""
    batch_size: int = 8
    """(short, detailed) pairs per optimizer step."""
    data_seed: int = 0
    """Seed of the pairs; batch k is drawn from (data_seed, k)."""
    pairs_file: str | None = None
    """JSONL of `{"prompt", "target"}` pairs to train on (e.g. `ranked.jsonl` of a best-of-n
    run, `enhancer.best_of_n`) instead of the synthetic (short, detailed) pairs."""
    init_adapter: str | None = None
    """LoRA adapter to continue from (e.g. the SFT stage's); None attaches a fresh one."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-3, warmup_steps=5, decay="cosine", weight_decay=0.0, ema_decay=0.0
        )
    )
    """Optimizer (no EMA: the adapter is saved as trained)."""
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(steps=60, log_every=5, save_every=10)
    )
    """Run length and cadence."""
    version: str | None = None
    """Version name of the produced adapter (default: enhancer-sft-<steps>)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optim.ema_decay != 0:
            raise ValueError("optim.ema_decay must be 0 for the enhancer (the adapter is saved)")


@dataclass(frozen=True)
class SFTPair:
    """One training example."""

    prompt: str
    """User-style short prompt."""
    target: str
    """Detailed rewrite stating the same attributes and filling in the rest."""


def training_attributes(rng: np.random.Generator) -> Attributes:
    """A random attribute combination outside the held-out split."""
    while True:
        attributes = Attributes.sample(rng)
        if not is_held_out(attributes):
            return attributes


def _user_word(text: str, candidates: tuple[str, ...], rng: np.random.Generator) -> str:
    """The longest of `candidates` the user wrote (whole words), else a random one."""
    lowered = " " + " ".join(WORD.findall(text.lower())) + " "
    present = [c for c in candidates if f" {c} " in lowered]
    return max(present, key=len) if present else choose(rng, candidates)


def detailed_rewrite(prompt: str, attributes: Attributes, rng: np.random.Generator) -> str:
    """A detailed caption of `attributes` (all six, quality words, a detailed-register template)
    that reuses the user's own word for every attribute the prompt states, so the model learns
    to copy what the user said and fill in only what they left open."""
    speed_adjective = _user_word(prompt, SPEED_ADJECTIVES[attributes.speed], rng)
    speed_adverb = _user_word(prompt, SPEED_ADVERBS[attributes.speed], rng)
    size = _user_word(prompt, SIZE_WORDS[attributes.size], rng)
    words = WORD.findall(prompt.lower())
    adverb_templates = tuple(t for i, t in enumerate(DETAILED_TEMPLATES) if i != ADJECTIVE_TEMPLATE)
    if speed_adverb in words:  # the user said it as an adverb: keep it one
        template = choose(rng, adverb_templates)
    elif speed_adjective in words:
        template = DETAILED_TEMPLATES[ADJECTIVE_TEMPLATE]
    else:
        template = choose(rng, DETAILED_TEMPLATES)
    return template.format(
        a_size=f"{'an' if size[0] in 'aeiou' else 'a'} {size}",
        size=size,
        color=_user_word(prompt, OBJECT_COLOR_WORDS[attributes.color], rng),
        shape=_user_word(prompt, SHAPE_WORDS[attributes.shape], rng),
        verb=_user_word(prompt, MOTION_VERBS, rng),
        direction=_user_word(prompt, DIRECTION_PHRASES[attributes.direction], rng),
        speed=speed_adverb,
        speed_adjective=speed_adjective,
        background=_user_word(prompt, BACKGROUND_COLOR_WORDS[attributes.background], rng),
        quality=choose(rng, QUALITY_PHRASES),
    )


def sft_pairs(step: int, batch_size: int, seed: int) -> list[SFTPair]:
    """The pairs of batch `step` (a pure function of its arguments)."""
    rng = np.random.default_rng([seed, step])
    pairs = []
    for _ in range(batch_size):
        attributes = training_attributes(rng)
        prompt = short_caption(attributes, rng).text
        pairs.append(SFTPair(prompt, detailed_rewrite(prompt, attributes, rng)))
    return pairs


def encode_pairs(tokenizer: Any, pairs: list[SFTPair]) -> dict[str, Tensor]:
    """Input ids, attention mask and labels (-100 outside the target) of right-padded chats."""
    rows: list[tuple[list[int], list[int]]] = []
    end = tokenizer.eos_token_id
    for pair in pairs:
        prompt_ids = tokenizer.apply_chat_template(
            chat_messages(pair.prompt), add_generation_prompt=True, tokenize=False
        )
        prompt_tokens = tokenizer(prompt_ids, add_special_tokens=False)["input_ids"]
        target_tokens = tokenizer(pair.target, add_special_tokens=False)["input_ids"] + [end]
        rows.append((prompt_tokens, target_tokens))
    length = max(len(p) + len(t) for p, t in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    for row, (prompt_tokens, target_tokens) in enumerate(rows):
        tokens = prompt_tokens + target_tokens
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        labels[row, len(prompt_tokens) : len(tokens)] = torch.tensor(target_tokens)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class AdapterParameters(nn.Module):
    """The trainable (LoRA) parameters of a peft model, as a module of their own, so the shared
    loop optimises and saves only them (they are the same tensors the peft model uses)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.weights = nn.ParameterDict(
            {
                name.replace(".", "__"): parameter
                for name, parameter in model.named_parameters()
                if parameter.requires_grad
            }
        )
        if not self.weights:
            raise ValueError("the model has no trainable parameters; was the adapter attached?")


def attach_lora(model: Any, settings: LoraSettings) -> Any:
    """`model` wrapped by peft with a fresh trainable LoRA adapter (dropout 0: deterministic)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def target_loss(model: Any, batch: dict[str, Tensor]) -> Tensor:
    """Mean next-token cross-entropy over the target tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    labels = batch["labels"][:, 1:].reshape(-1)
    return nn.functional.cross_entropy(shifted.float(), labels, ignore_index=IGNORE_INDEX)


@dataclass(frozen=True)
class SFTResult:
    """How `run_enhancer_sft` ended."""

    adapter: Path | None
    """The saved adapter folder (None when the run stopped early)."""
    step: int
    """Steps done."""
    cpu_seconds: float
    """CPU time of the whole run so far."""


def run_enhancer_sft(config: EnhancerSFTConfig, run_dir: Path) -> SFTResult:
    """Train (or resume) a LoRA SFT run in `run_dir`; on completion save `run_dir/adapter`."""
    base = ensure_base_model(config.base_model)
    recipe = start_run_folder(run_dir, config)
    tokenizer = load_tokenizer(base)
    torch.manual_seed(config.loop.seed)  # LoRA A init; resume overwrites it with the saved state
    model = trainable_adapter_model(base, config.init_adapter, config.lora)
    model.train()
    trainable = AdapterParameters(model)

    file_pairs = load_pairs(Path(config.pairs_file)) if config.pairs_file else None

    def compute_loss(step: int, rng: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        pairs = (
            sft_pairs(step, config.batch_size, config.data_seed)
            if file_pairs is None
            else pairs_of_step(file_pairs, step, config.batch_size, config.data_seed)
        )
        batch = encode_pairs(tokenizer, pairs)
        loss = target_loss(model, batch)
        return loss, {"target_tokens": float((batch["labels"] != IGNORE_INDEX).sum())}

    result = train_loop(
        trainable, compute_loss, run_dir, config.optim, config.loop, desc="enhancer sft"
    )
    if not result.finished:
        return SFTResult(None, result.step, result.cpu_seconds)
    version = config.version or f"enhancer-sft-{result.step}"
    metrics = {"final_loss": result.last_metrics.get("loss"), "cpu_seconds": result.cpu_seconds}
    adapter = save_adapter(
        model,
        run_dir / ADAPTER_DIR,
        version,
        base,
        recipe,
        result.step,
        metrics,
        stage="enhancer-ranked-sft" if config.pairs_file else "enhancer-sft",
        parent=config.init_adapter,
    )
    return SFTResult(adapter, result.step, result.cpu_seconds)


def trainable_adapter_model(base: Path, init_adapter: str | None, lora: LoraSettings) -> Any:
    """The base LLM with a trainable LoRA adapter: `init_adapter` (checked), or a fresh one
    with `lora` (seed torch first: its init is random)."""
    model = load_causal_lm(base)
    if init_adapter is None:
        return attach_lora(model, lora)
    from peft import PeftModel

    return PeftModel.from_pretrained(model, check_adapter_folder(init_adapter), is_trainable=True)


def check_adapter_folder(folder: str) -> str:
    """`folder` if it holds a peft adapter; ValueError naming `init_adapter` otherwise."""
    if not (Path(folder) / "adapter_config.json").is_file():
        raise ValueError(
            f"init_adapter: {folder} has no adapter_config.json; give the `adapter` folder of a "
            "`vpt train enhancer` run, or null for a fresh adapter"
        )
    return folder


def load_pairs(path: Path) -> list[SFTPair]:
    """(prompt, target) pairs from a JSONL file; ValueError naming the file and line if bad."""
    if not path.is_file():
        raise ValueError(f"pairs_file: {path} does not exist")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            pair = SFTPair(str(record["prompt"]), str(record["target"]))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"pairs_file: {path} line {number} is not a JSON object with 'prompt' and "
                f"'target' ({error})"
            ) from None
        if not pair.prompt.strip() or not pair.target.strip():
            raise ValueError(f"pairs_file: {path} line {number} has an empty prompt or target")
        pairs.append(pair)
    if not pairs:
        raise ValueError(f"pairs_file: {path} holds no pairs")
    return pairs


def pairs_of_step(pairs: list[SFTPair], step: int, batch_size: int, seed: int) -> list[SFTPair]:
    """Batch `step` of a fixed pair list (a pure function of its arguments): each epoch visits
    every pair once, in an order drawn from (seed, epoch)."""
    batch = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, index = divmod(position, len(pairs))
        order = np.random.default_rng([seed, epoch]).permutation(len(pairs))
        batch.append(pairs[int(order[index])])
    return batch


def start_run_folder(run_dir: Path, config: Any) -> dict[str, Any]:
    """Create `run_dir` (or check that it holds a run of the same recipe) and record the recipe;
    returns it as a dict."""
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = config_to_dict(config)
    recorded = run_dir / "config.json"
    check_resumable(recorded, recipe)
    recorded.write_text(json.dumps(recipe, indent=2))
    return recipe


def check_resumable(recorded: Path, recipe: dict[str, Any]) -> None:
    """Refuse to continue a run folder started with a different config; only `loop` (length,
    cadence, stop_after) may change between invocations."""
    if not recorded.is_file():
        return
    saved = json.loads(recorded.read_text())
    changed = sorted(key for key in recipe if key != "loop" and saved.get(key) != recipe[key])
    if changed:
        raise ValueError(
            f"{recorded.parent} holds a run with a different config (changed: "
            f"{', '.join(changed)}); use a new --run-dir, or the original config to resume"
        )


def save_adapter(
    model: Any,
    folder: Path,
    version: str,
    base: Path,
    recipe: dict[str, Any],
    steps: int,
    metrics: dict[str, Any],
    *,
    stage: str = "enhancer-sft",
    parent: str | None = None,
) -> Path:
    """Save the peft adapter with a vpt manifest (sha256 of every file), atomically; the
    manifest's parent is `parent` (default: the base model folder)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(str(staging))
        files = {
            path.relative_to(staging).as_posix(): {
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
            }
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        manifest = Manifest(
            version=version,
            parent=parent or str(base),
            stage=stage,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            recipe=recipe,
            data_seed=int(recipe.get("data_seed", 0)),
            steps=steps,
            metrics=metrics,
            files=files,
        )
        (staging / MANIFEST).write_text(json.dumps(config_to_dict(manifest), indent=2))
        staging.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
