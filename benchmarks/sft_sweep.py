"""Compare SFT configurations of the shapes-world generator side by side.

Trains the autoencoder once (recipes/shapes_autoencoder.yaml), then runs each variant of
recipes/shapes_sft.yaml (a set of `--set` overrides) as its own `vpt train sft` process, all
in parallel, and collects the held-out attribute accuracy curves from their metrics files.
Used to choose the shipped recipe; it ran on a lent H100 (see docs/generator.md).

    python benchmarks/sft_sweep.py --device cuda --steps 6000 --out sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PIXELS = [
    "autoencoder=pixels",
    "transformer.in_channels=3",
    "transformer.out_channels=3",
    "transformer.patch_size=[2,8,8]",
]
LATENT = ["autoencoder=AE"]
# name -> overrides; variants naming autoencoder=AE start once the autoencoder is trained.
VARIANTS: dict[str, list[str]] = {
    "pix_x_p288_d128L4": [*PIXELS, "generator.prediction=sample"],
    "pix_v_p288_d128L4": [*PIXELS, "generator.prediction=velocity"],
    "pix_x_p188_d128L4": [*PIXELS, "generator.prediction=sample", "transformer.patch_size=[1,8,8]"],
    "pix_x_p288_d192L6": [
        *PIXELS,
        "generator.prediction=sample",
        "transformer.num_attention_heads=6",
        "transformer.num_layers=6",
        "transformer.ffn_dim=768",
    ],
    "pix_x_p288_d128L4_shift3": [*PIXELS, "generator.prediction=sample", "timesteps.shift=3.0"],
    "pix_x_p288_d128L4_b64": [*PIXELS, "generator.prediction=sample", "batch_size=64"],
    "lat_v_d128L4": [*LATENT, "generator.prediction=velocity"],
    "lat_x_d128L4": [*LATENT, "generator.prediction=sample"],
    "lat_v_p422_d128L4": [
        *LATENT,
        "generator.prediction=velocity",
        "transformer.patch_size=[4,2,2]",
    ],
    "lat_v_p422_d128L6": [
        *LATENT,
        "generator.prediction=velocity",
        "transformer.patch_size=[4,2,2]",
        "transformer.num_layers=6",
    ],
}

# Second sweep (session 2): the shipped autoencoder (`--ae`), 4x the clips and batch 128, and
# attention heads of 64 dims (Wan's own head size: its 3-D RoPE gives each spatial axis 20
# rotary dims instead of 10) at several temporal patch sizes.
BIG_DATA = ["data.num_clips=48000", "batch_size=128"]
HEAD64 = ["transformer.attention_head_dim=64"]
VARIANTS_V2: dict[str, list[str]] = {
    "b128_h32x4_L6": [*LATENT, *BIG_DATA],
    "b128_h64x2_L6": [*LATENT, *BIG_DATA, *HEAD64, "transformer.num_attention_heads=2"],
    "b128_h64x4_L6": [
        *LATENT,
        *BIG_DATA,
        *HEAD64,
        "transformer.num_attention_heads=4",
        "transformer.ffn_dim=1024",
        "optim.lr=5.0e-4",
    ],
    "b128_h64x4_L6_p222": [
        *LATENT,
        *BIG_DATA,
        *HEAD64,
        "transformer.num_attention_heads=4",
        "transformer.ffn_dim=1024",
        "optim.lr=5.0e-4",
        "transformer.patch_size=[2,2,2]",
    ],
    "b128_h64x2_L8_p122": [
        *LATENT,
        *BIG_DATA,
        *HEAD64,
        "transformer.num_attention_heads=2",
        "transformer.num_layers=8",
        "transformer.patch_size=[1,2,2]",
    ],
}
# Third sweep: (frame, row, column) coordinate channels on the transformer's input
# (vpt.models.transformer.append_position_channels) at the shipped size.
POSITION = ["generator.use_position_channels=true", "transformer.in_channels=11"]
VARIANTS_V3: dict[str, list[str]] = {
    "pos_b128_h32x4_L6": [*LATENT, *POSITION, "data.num_clips=24000", "batch_size=128"],
    "pos_b32_h32x4_L6": [*LATENT, *POSITION],
}
# Fourth sweep (session 4): the direction prior. `benchmarks/direction_probe.py` (probe 3)
# shows that no model so far predicts the direction-dependent mean of the data near pure noise
# (left-moving objects start right and end left), which needs absolute position (Wan's RoPE is
# relative) and training at the nearly-pure-noise levels that the shifted logit-normal density
# barely visits (P(sigma > 0.95) ~ 3%). Position channels x high-noise timestep densities.
MID_DATA = ["data.num_clips=24000", "batch_size=128"]
UNIFORM10 = ["timesteps.kind=uniform", "timesteps.shift=10.0"]
HIGH_MIX = ["timesteps.high_noise_fraction=0.5", "timesteps.high_noise_min=0.9"]
VARIANTS_V4: dict[str, list[str]] = {
    "d_ctrl_b128": [*LATENT, *MID_DATA],
    "d_nopos_u10_b128": [*LATENT, *MID_DATA, *UNIFORM10],
    "d_pos_u10_b128": [*LATENT, *POSITION, *MID_DATA, *UNIFORM10],
    "d_pos_mix_b128": [*LATENT, *POSITION, *MID_DATA, *HIGH_MIX],
    "d_pos_mix08_b128": [
        *LATENT,
        *POSITION,
        *MID_DATA,
        "timesteps.high_noise_fraction=0.8",
        "timesteps.high_noise_min=0.9",
    ],
    "d_pos_mix_b256": [*LATENT, *POSITION, "data.num_clips=48000", "batch_size=256", *HIGH_MIX],
    "d_pos_u10_b32": [*LATENT, *POSITION, *UNIFORM10],
    "d_pos_mix_b128_h64L8": [
        *LATENT,
        *POSITION,
        *MID_DATA,
        *HIGH_MIX,
        *HEAD64,
        "transformer.num_layers=8",
        "transformer.ffn_dim=1024",
        "optim.lr=5.0e-4",
    ],
}
VARIANTS.update(VARIANTS_V2)
VARIANTS.update(VARIANTS_V3)
VARIANTS.update(VARIANTS_V4)


def run(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--ae-steps", type=int, default=3000)
    parser.add_argument("--latent-steps", type=int, default=4000)
    parser.add_argument("--work", default="runs/sweep")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument(
        "--extra", action="append", default=[], help="override for all (applied last)"
    )
    parser.add_argument("--out", default="sweep.json")
    parser.add_argument("--ae", default=None, help="use this trained VAE folder, skip training one")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=0.0,
        help="stop every variant after this many seconds, then finish each at its last saved "
        "state (a checkpoint with the final evaluation) and run the direction probe on it",
    )
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VPT_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    vpt = [sys.executable, "-m", "vpt.cli.main"]
    started = time.time()
    ae_dir = work / "autoencoder"
    ae_command = [
        *vpt,
        "train",
        "autoencoder",
        "--config",
        "recipes/shapes_autoencoder.yaml",
        "--run-dir",
        str(ae_dir),
        "--device",
        args.device,
        "--set",
        f"loop.steps={args.ae_steps}",
    ]

    def launch(name: str, steps: int, log_name: str = "") -> subprocess.Popen[bytes]:
        vae = args.ae or str(ae_dir / "vae")
        overrides = [o.replace("=AE", f"={vae}") for o in VARIANTS[name]]
        command = [
            *vpt,
            "train",
            "sft",
            "--config",
            "recipes/shapes_sft.yaml",
            "--run-dir",
            str(work / name),
            "--device",
            args.device,
            "--set",
            f"loop.steps={steps}",
            "--set",
            f"eval_every={args.eval_every}",
        ]
        for override in [*overrides, *args.extra]:
            command += ["--set", override]
        return run(command, work / f"{log_name or name}.log", env)

    needs_ae = [n for n in args.variants if "autoencoder=AE" in VARIANTS[n]]
    processes = {n: launch(n, args.steps) for n in args.variants if n not in needs_ae}
    if needs_ae and args.ae:
        processes.update({n: launch(n, args.latent_steps) for n in needs_ae})
    elif needs_ae:
        subprocess.run(ae_command, check=True, env=env, stdout=subprocess.DEVNULL)
        processes.update({n: launch(n, args.latent_steps) for n in needs_ae})
    ae_seconds = time.time() - started
    if args.time_limit > 0:
        codes = wait_or_stop(processes, started + args.time_limit)
        finish_at_saved_state(args.variants, work, launch)
        probes = probe_checkpoints(args.variants, work, args.device, env)
    else:
        codes = {name: process.wait() for name, process in processes.items()}
        probes = {}
    results: dict[str, Any] = {
        "ae_seconds": round(ae_seconds, 1),
        "total_seconds": round(time.time() - started),
        "variants": {},
    }
    for name in args.variants:
        metrics_file = work / name / "metrics.jsonl"
        lines = (
            [json.loads(x) for x in metrics_file.read_text().splitlines()]
            if metrics_file.exists()
            else []
        )
        evals = [x for x in lines if "eval_all_correct" in x]
        losses = [x for x in lines if "loss" in x]
        results["variants"][name] = {
            "exit_code": codes[name],
            "overrides": VARIANTS[name],
            "final_loss": losses[-1]["loss"] if losses else None,
            "cpu_seconds": losses[-1].get("cpu_seconds") if losses else None,
            "evals": evals,
            "final_checkpoint_metrics": final_metrics(work / name / "checkpoint"),
            "direction_probe": probes.get(name),
        }
        print(name, codes[name], json.dumps(evals[-1] if evals else {}))
    Path(args.out).write_text(json.dumps(results, indent=2))


def final_metrics(checkpoint: Path) -> dict[str, Any] | None:
    """The metrics (final held-out evaluation included) in a checkpoint's manifest."""
    manifest = checkpoint / "manifest.json"
    return json.loads(manifest.read_text()).get("metrics") if manifest.is_file() else None


def wait_or_stop(processes: dict[str, subprocess.Popen[bytes]], deadline: float) -> dict[str, int]:
    """Exit codes, killing whatever still runs at `deadline` (its state stays on disk)."""
    codes: dict[str, int] = {}
    for name, process in processes.items():
        try:
            codes[name] = process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            codes[name] = process.wait()
    return codes


def finish_at_saved_state(names: list[str], work: Path, launch: Any) -> None:
    """Resume each unfinished run with `loop.steps` = its saved step: the trainer then only
    writes the checkpoint (EMA weights) and runs the final evaluation."""
    pending = {}
    for name in names:
        info = work / name / "state" / "info.json"
        if (work / name / "checkpoint").exists() or not info.is_file():
            continue
        step = json.loads(info.read_text())["step"]
        pending[name] = launch(name, step, log_name=f"{name}.finish")
    for process in pending.values():
        process.wait()


def probe_checkpoints(
    names: list[str], work: Path, device: str, env: dict[str, str]
) -> dict[str, Any]:
    """`benchmarks/direction_probe.py` (all three probes) on every finished checkpoint."""
    launched = {}
    for name in names:
        checkpoint = work / name / "checkpoint"
        if not checkpoint.exists():
            continue
        out = work / f"{name}.direction_probe.json"
        command = [
            sys.executable,
            str(Path(__file__).with_name("direction_probe.py")),
            "--checkpoint",
            str(checkpoint),
            "--device",
            device,
            "--out",
            str(out),
        ]
        launched[name] = (run(command, work / f"{name}.probe.log", env), out)
    results = {}
    for name, (process, out) in launched.items():
        process.wait()
        if out.is_file():
            probe = json.loads(out.read_text())
            probe.pop("direction_read_per_seed", None)
            results[name] = probe
    return results


if __name__ == "__main__":
    main()
