"""Enhancer latency per prompt: the embedded backend vs a vLLM server, same model and adapter.

    python benchmarks/enhancer_latency.py --adapter runs/enhancer_sft/adapter

For each backend: one prompt at a time (the latency a user waits for) and all prompts in one
call (embedded: padded batches; vLLM: concurrent requests it batches itself). vLLM runs in
`.venv-vllm` (bash scripts/setup_vllm.sh), float32, eager, with the adapter hot-loaded under a
versioned name; its start-up time is reported too. Greedy decoding, so the two backends should
write the same text; the share of identical rewrites is reported. Writes
docs/results/enhancer_latency.json. On this shared 2-core machine the figures depend on load:
`load_average` is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enhancer.base_model import ensure_base_model  # noqa: E402
from enhancer.embedded import EmbeddedBackend  # noqa: E402
from enhancer.prompt_enhancer import (  # noqa: E402
    EnhancedPrompt,
    EnhancerConfig,
    GenerationSettings,
    PromptEnhancer,
    VLLMEndpoint,
)
from enhancer.vllm_backend import VLLMBackend  # noqa: E402
from enhancer.vllm_server import VLLMServer, VLLMServerConfig  # noqa: E402
from vpt.eval.prompt_set import load_prompt_set  # noqa: E402


def measure(enhancer: PromptEnhancer, prompts: list[str], batch_size: int) -> dict[str, Any]:
    """Sequential per-prompt latency, then batched throughput."""
    enhancer.enhance(prompts[0])  # warm-up
    single: list[EnhancedPrompt] = []
    for prompt in prompts:
        single.append(enhancer.enhance(prompt))
    latencies = sorted(r.latency_s for r in single)
    started = time.monotonic()
    batched: list[EnhancedPrompt] = []
    for start in range(0, len(prompts), batch_size):
        batched += enhancer.enhance_batch(prompts[start : start + batch_size])
    batch_seconds = time.monotonic() - started
    return {
        "single_mean_s": statistics.mean(latencies),
        "single_p50_s": latencies[len(latencies) // 2],
        "single_p90_s": latencies[int(0.9 * (len(latencies) - 1))],
        "batched_s_per_prompt": batch_seconds / len(prompts),
        "batch_size": batch_size,
        "fell_back": sum(r.fell_back for r in single),
        "mean_words": statistics.mean(len((r.rewrite or "").split()) for r in single),
        "rewrites": [r.rewrite for r in single],
    }


def report(name: str, figures: dict[str, Any]) -> None:
    print(
        f"{name:>9}: one prompt mean {figures['single_mean_s']:.2f} s "
        f"(p50 {figures['single_p50_s']:.2f}, p90 {figures['single_p90_s']:.2f}); "
        f"batched {figures['batched_s_per_prompt']:.2f} s/prompt "
        f"(batch {figures['batch_size']}); {figures['mean_words']:.1f} words"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapter", help="LoRA adapter folder (default: the base model)")
    parser.add_argument("--prompts", default="shapes_eval_v1")
    parser.add_argument("--count", type=int, default=16, help="prompts to time")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs/results/enhancer_latency.json"))
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    prompts = list(load_prompt_set(args.prompts).prompts[: args.count])
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    config = EnhancerConfig(timeout_s=120.0, generation=settings)
    base = ensure_base_model()
    results: dict[str, Any] = {
        "prompts": len(prompts),
        "adapter": args.adapter,
        "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy",
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
    }
    started = time.monotonic()
    embedded = EmbeddedBackend.load(base, args.adapter, settings)
    results["embedded_load_s"] = time.monotonic() - started
    results["embedded"] = measure(PromptEnhancer(embedded, config), prompts, args.batch_size)
    report("embedded", results["embedded"])
    del embedded
    if not args.skip_vllm:
        server_config = VLLMServerConfig(model=str(base), max_model_len=512)
        with (
            tempfile.TemporaryDirectory() as scratch,
            VLLMServer(server_config, Path(scratch) / "vllm.log") as server,
        ):
            results["vllm_startup_s"] = server.startup_s
            backend = VLLMBackend(VLLMEndpoint(url=server.url), settings)
            if args.adapter:
                started = time.monotonic()
                backend.swap_adapter("enhancer-v1", args.adapter)
                results["vllm_adapter_load_s"] = time.monotonic() - started
            vllm_config = EnhancerConfig(backend="vllm", timeout_s=120.0, generation=settings)
            results["vllm"] = measure(PromptEnhancer(backend, vllm_config), prompts, 64)
            report("vllm", results["vllm"])
        same = sum(
            a == b
            for a, b in zip(
                results["embedded"]["rewrites"], results["vllm"]["rewrites"], strict=True
            )
        )
        results["identical_rewrites"] = same
        print(f"identical rewrites embedded vs vLLM: {same}/{len(prompts)}")
    results["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
