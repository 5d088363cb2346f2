#!/usr/bin/env bash
# Check a real NVIDIA GPU in under 8 minutes: the cuda tests (one-step and wavefront bioheat) and
# the GPU benchmarks, written to one JSON (device, versions, each test's outcome, each rate).
#   benchmarks/gpu_check.sh [OUT.json]     (PYTHON=... picks the interpreter; default .venv/bin/python)
# Needs fus installed with the test and bench extras: pip install -e ".[test,bench]".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" benchmarks/gpu_check.py "${1:-gpu_check.json}" --tests-timeout 200 --bench-timeout 220
