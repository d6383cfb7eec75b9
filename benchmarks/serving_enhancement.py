"""Prompt enhancement through the gRPC service vs asking vLLM directly, same prompts, same server.

    python benchmarks/serving_enhancement.py --adapter runs/enhancer_sft/adapter

Starts a vLLM OpenAI server (`.venv-vllm`, bash scripts/setup_vllm.sh) on the converted
SmolLM2-135M-Instruct, hot-loads the adapter (if given) under its versioned name, then for each
prompt of `shapes_eval_v1` (first `--prompts`):

- direct: one chat-completions POST with the exact body the service sends (the serving
  `OpenAIChatEnhancer.request_body`), timed; the answer is judged by
  `vpt.prompt_rewriting.check_rewrite`;
- service: `vpt serve`'s app in-process (the shipped model, 2 denoising steps: the generator is
  not what is measured) with the `openai` enhancer backend on the same server; the time from
  sending GenerateVideo to the GenerationStarted message (validation + admission + enhancement +
  job creation), the hook's own time, the result label and the effective prompt.

One prompt at a time, direct and service interleaved (alternating which goes first, so changes of
load on a shared machine hit both alike), after one warm-up request each way. Reports
medians/p90, the per-prompt difference service - direct, the result counts,
and whether the service's effective prompt is the direct rewrite whenever that was accepted (and
the user's prompt otherwise). Writes docs/results/serving_enhancement.json. On the shared 2-core
machine the figures depend on load: `load_average` is recorded with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enhancer.base_model import ensure_base_model  # noqa: E402
from enhancer.embedded import adapter_version  # noqa: E402
from enhancer.prompt_enhancer import VLLMEndpoint  # noqa: E402
from enhancer.vllm_backend import VLLMBackend  # noqa: E402
from enhancer.vllm_server import VLLMServer, VLLMServerConfig  # noqa: E402
from serving.client import AsyncVideoClient  # noqa: E402
from serving.config import (  # noqa: E402
    EnhancementConfig,
    OpenAIEnhancerConfig,
    ServeConfig,
    ServerConfig,
)
from serving.enhancement import OpenAIChatEnhancer, OpenAIEndpoint  # noqa: E402
from serving.events.sqlite_bus import SqliteEventBus  # noqa: E402
from serving.protos import types_pb  # noqa: E402
from serving.server import ServingApp, build_registry  # noqa: E402
from vpt.eval.prompt_set import load_prompt_set  # noqa: E402
from vpt.prompt_rewriting import RewriteLimits, check_rewrite  # noqa: E402


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "mean_s": round(statistics.mean(ordered), 4),
        "p50_s": round(ordered[len(ordered) // 2], 4),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
    }


async def ask_directly(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, float]:
    """vLLM's answer to `body` and the seconds it took."""
    started = time.monotonic()
    response = await http.post("/v1/chat/completions", json=body)
    seconds = time.monotonic() - started
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"]), seconds


async def ask_through_service(api: AsyncVideoClient, prompt: str) -> tuple[Any, float]:
    """The GenerationStarted message for `prompt` and the seconds until it arrived (the rest of
    the stream is read to the end, so generations never overlap the next measurement)."""
    sent = time.monotonic()
    started, seconds = None, 0.0
    async for message in api.stream(prompt, seed=0, steps=2):
        if message.WhichOneof("event") == "started":
            started, seconds = message.started, time.monotonic() - sent
    assert started is not None
    return started, seconds


async def measure(
    url: str, model: str, prompts: list[str], state_dir: Path
) -> list[dict[str, Any]]:
    """Each prompt directly and through the service, interleaved (alternating which goes first,
    so a change of machine load hits both alike)."""
    config = ServeConfig(
        server=ServerConfig(port=0, admin_port=0, metrics_port=-1),
        enhancement=EnhancementConfig(
            backend="openai",
            timeout_seconds=120.0,
            is_default_enabled=True,
            openai=OpenAIEnhancerConfig(
                base_url=f"{url}/v1", base_url_env="", model=model, timeout_seconds=120.0
            ),
        ),
        state_dir=str(state_dir),
    )
    config.validate()
    registry = await asyncio.to_thread(build_registry, config)
    app = ServingApp(config, registry, SqliteEventBus(state_dir / "events.sqlite"), keys=[])
    await app.start()
    body_of = OpenAIChatEnhancer(OpenAIEndpoint(f"{url}/v1", model)).request_body

    def hook_total() -> float:
        value = app.metrics.registry.get_sample_value(
            "vpt_stage_duration_seconds_sum", {"stage": "enhance"}
        )
        return value or 0.0

    rows = []
    try:
        async with (
            AsyncVideoClient(f"127.0.0.1:{app.port}") as api,
            httpx.AsyncClient(base_url=url, timeout=120) as http,
        ):
            await ask_directly(http, body_of(prompts[0]))  # warm-up, both ways
            await ask_through_service(api, prompts[0])
            for index, prompt in enumerate(prompts):
                hook_before = hook_total()
                if index % 2 == 0:
                    raw, direct_s = await ask_directly(http, body_of(prompt))
                    started, service_s = await ask_through_service(api, prompt)
                else:
                    started, service_s = await ask_through_service(api, prompt)
                    raw, direct_s = await ask_directly(http, body_of(prompt))
                verdict = check_rewrite(prompt, raw, RewriteLimits())
                rows.append(
                    {
                        "prompt": prompt,
                        "direct_s": direct_s,
                        "direct_rewrite": verdict.text,
                        "direct_is_accepted": verdict.is_accepted,
                        "direct_reason": verdict.reason,
                        "service_to_started_s": service_s,
                        "service_hook_s": hook_total() - hook_before,
                        "service_result": types_pb.PromptEnhancementResult.Name(
                            started.prompt_enhancement_result
                        )
                        .removeprefix("PROMPT_ENHANCEMENT_RESULT_")
                        .lower(),
                        "service_effective_prompt": started.effective_prompt,
                    }
                )
                print(f"{prompt!r}: direct {direct_s:.2f} s, service {service_s:.2f} s", flush=True)
    finally:
        await app.stop(5)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", help="peft LoRA adapter folder (default: the base model)")
    parser.add_argument("--prompts", type=int, default=16, help="prompts of shapes_eval_v1")
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "results" / "serving_enhancement.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    prompts = list(load_prompt_set("shapes_eval_v1").prompts[: args.prompts])
    base = ensure_base_model()
    with tempfile.TemporaryDirectory() as scratch:
        server_config = VLLMServerConfig(model=str(base), max_model_len=512)
        with VLLMServer(server_config, Path(scratch) / "vllm.log") as server:
            model = server_config.served_model_name
            if args.adapter is not None:
                model = adapter_version(Path(args.adapter))
                backend = VLLMBackend(VLLMEndpoint(url=server.url))
                backend.load_adapter(model, args.adapter)
                backend.close()
            print(f"vLLM ready in {server.startup_s:.1f} s; model {model}", flush=True)
            rows = asyncio.run(measure(server.url, model, prompts, Path(scratch) / "state"))
            startup_s = server.startup_s
    agree = 0
    for row in rows:
        expected = row["direct_rewrite"] if row["direct_is_accepted"] else row["prompt"]
        agree += row["service_effective_prompt"] == expected
    overhead = [r["service_to_started_s"] - r["direct_s"] for r in rows]
    results = {
        "model": model,
        "adapter": args.adapter,
        "prompts": len(prompts),
        "vllm_startup_s": startup_s,
        "direct": summary([r["direct_s"] for r in rows]),
        "service_to_started": summary([r["service_to_started_s"] for r in rows]),
        "service_hook": summary([r["service_hook_s"] for r in rows]),
        "service_minus_direct_p50_s": round(sorted(overhead)[len(overhead) // 2], 4),
        "direct_accepted": sum(r["direct_is_accepted"] for r in rows),
        "service_results": dict(Counter(r["service_result"] for r in rows)),
        "effective_prompt_matches_direct": agree,
        "load_average": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    shown = {k: v for k, v in results.items() if k != "rows"}
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
