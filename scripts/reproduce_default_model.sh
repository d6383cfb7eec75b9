#!/usr/bin/env bash
# Reproduce the shipped default model from scratch on this machine (CPU):
#   1. train the latent autoencoder on the shapes world   (recipes/shapes_autoencoder.yaml)
#   2. flow-matching SFT of the Wan transformer over it    (recipes/shapes_sft.yaml)
#   3. the first-frame-conditioned fine-tune that binds the direction words
#      (recipes/shapes_sft_first_frame.yaml): 4,500 steps (run on a lent H100 for the shipped
#      model; about 1.3 CPU-s a step here), then 2,600 more from that checkpoint (run on this CPU:
#      shapes-sft-v2), then 3,000 more from that one (this CPU: shapes-sft-v3, with two-pass
#      sampling, `generator.sampler.anchor_steps`, as its default), then 1,500 steps with the
#      learning rate decayed by a cosine (this CPU: shapes-sft-v4), then 2,000 steps on the
#      curated clips only (clean, detailed captions) with the noise levels centred (logit-normal,
#      shift 1) and a lower rate (this CPU: shapes-sft-v5, the shipped default)
#   4. copy the checkpoint to vpt/assets/models/shapes-default
# Each stage resumes from its run folder if interrupted; re-run the script to continue.
# VPT_THREADS sets torch threads (default 2 here; use 1 on a loaded machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VPT_THREADS=${VPT_THREADS:-2} OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
RUNS=${RUNS:-runs}
.venv/bin/vpt train autoencoder --config recipes/shapes_autoencoder.yaml --run-dir "$RUNS/autoencoder"
.venv/bin/vpt train sft --config recipes/shapes_sft.yaml --run-dir "$RUNS/sft" \
  --set autoencoder="$RUNS/autoencoder/vae"
.venv/bin/vpt train sft --config recipes/shapes_sft_first_frame.yaml --run-dir "$RUNS/sft_first_frame_h100" \
  --set init_from="$RUNS/sft/checkpoint" --set loop.steps=4500
.venv/bin/vpt train sft --config recipes/shapes_sft_first_frame.yaml --run-dir "$RUNS/sft_first_frame_cpu" \
  --set init_from="$RUNS/sft_first_frame_h100/checkpoint" --set loop.steps=2600 \
  --set optim.warmup_steps=50 --set eval_every=650
.venv/bin/vpt train sft --config recipes/shapes_sft_first_frame.yaml --run-dir "$RUNS/sft_first_frame_cpu2" \
  --set init_from="$RUNS/sft_first_frame_cpu/checkpoint" --set loop.steps=3000 \
  --set optim.warmup_steps=50 --set eval_every=500 --set version=shapes-sft-v3 \
  --set generator.sampler.anchor_steps=10
.venv/bin/vpt train sft --config recipes/shapes_sft_first_frame.yaml --run-dir "$RUNS/sft_first_frame_anneal" \
  --set init_from="$RUNS/sft_first_frame_cpu2/checkpoint" --set loop.steps=1500 \
  --set optim.decay=cosine --set optim.warmup_steps=50 --set optim.ema_decay=0.998 \
  --set eval_every=500 --set version=shapes-sft-v4 --set generator.sampler.anchor_steps=10
.venv/bin/vpt train sft --config recipes/shapes_sft_first_frame.yaml --run-dir "$RUNS/sft_curated" \
  --set init_from="$RUNS/sft_first_frame_anneal/checkpoint" --set data.curated=true \
  --set loop.steps=2000 --set timesteps.shift=1.0 --set timesteps.high_noise_fraction=0.2 \
  --set optim.lr=1.0e-4 --set optim.warmup_steps=50 --set optim.ema_decay=0.998 \
  --set eval_every=100000 --set version=shapes-sft-v5 --set generator.sampler.anchor_steps=10
rm -rf vpt/assets/models/shapes-default
mkdir -p vpt/assets/models
cp -r "$RUNS/sft_curated/checkpoint" vpt/assets/models/shapes-default
.venv/bin/vpt info vpt/assets/models/shapes-default
