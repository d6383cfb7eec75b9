#!/usr/bin/env bash
# Reproduce the shipped prompt enhancer (enhancer/assets/enhancer-default, `enhancer-grpo-v5`),
# a LoRA adapter of SmolLM2-135M-Instruct, on this machine (CPU):
#   1. LoRA SFT on (short -> detailed) prompt pairs of the shapes world (recipes/enhancer_sft.yaml)
#   2. 28 GRPO steps with the video rewards of `shapes-sft-v1` (the default generator when it
#      ran), KL weight 0.3 to the SFT adapter (recipes/enhancer_grpo.yaml; `enhancer-grpo-kl0.3`)
#   3. 20 GRPO steps more with the video rewards of `shapes-sft-v5` (the current default
#      generator), KL weight 0.3 to stage 2's adapter (`enhancer-grpo-v5`, ~1,000 CPU-s)
#   4. copy the adapter to enhancer/assets/enhancer-default
# Each stage resumes from its run folder if interrupted; re-run the script to continue.
# The figures of docs/enhancer.md ("Retrained on shapes-sft-v5's videos") come from stage 3's
# adapter. VPT_THREADS sets torch threads (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VPT_THREADS=${VPT_THREADS:-1} OMP_NUM_THREADS=${VPT_THREADS:-1} HF_HUB_OFFLINE=1
RUNS=${RUNS:-runs}
if [ ! -d "$RUNS/shapes-sft-v1/checkpoint" ]; then  # the generator of stage 2, from git
  mkdir -p "$RUNS/shapes-sft-v1/tmp"
  git archive de18579 vpt/assets/models/shapes-default | tar x -C "$RUNS/shapes-sft-v1/tmp"
  mv "$RUNS/shapes-sft-v1/tmp/vpt/assets/models/shapes-default" "$RUNS/shapes-sft-v1/checkpoint"
  rm -rf "$RUNS/shapes-sft-v1/tmp"
fi
.venv/bin/vpt enhancer convert
.venv/bin/vpt train enhancer --config recipes/enhancer_sft.yaml --run-dir "$RUNS/enhancer_sft"
.venv/bin/vpt train enhancer --stage grpo --config recipes/enhancer_grpo.yaml \
  --run-dir "$RUNS/enhancer_grpo_kl" --set init_adapter="$RUNS/enhancer_sft/adapter" \
  --set generator="$RUNS/shapes-sft-v1/checkpoint" --set loss.kl_weight=0.3 \
  --set loop.steps=28 --set version=enhancer-grpo-kl0.3
.venv/bin/vpt train enhancer --stage grpo --config recipes/enhancer_grpo.yaml \
  --run-dir "$RUNS/enhancer_grpo_v5" --set init_adapter="$RUNS/enhancer_grpo_kl/adapter" \
  --set generator=vpt/assets/models/shapes-default --set loss.kl_weight=0.3 \
  --set loop.steps=20 --set version=enhancer-grpo-v5
rm -rf enhancer/assets/enhancer-default
mkdir -p enhancer/assets
cp -r "$RUNS/enhancer_grpo_v5/adapter" enhancer/assets/enhancer-default
