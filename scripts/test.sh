#!/usr/bin/env bash
# Set up (if needed) and run every check CI runs: ruff, mypy, import-linter, pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The real vLLM server test (tests/enhancer/test_vllm_server.py) needs its own environment:
# about 2 minutes to install on a fresh machine, skipped when already installed.
bash scripts/setup_vllm.sh
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest "$@"
