#!/bin/sh
# The GPU check (gpu/check.py: CUDA exactness, moby-llama on CUDA and split over every GPU with nccl,
# the benchmark) with this machine's own python3 and torch: no venv, ape or network.
# PYTHON=... picks another interpreter; without a torch in python3, the repository's .venv is tried.
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else echo "Error: no python3 with torch found (set PYTHON=...)"; exit 2; fi
fi
exec "$PY" gpu/check.py "$@"
