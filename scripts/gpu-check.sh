#!/usr/bin/env bash
# The checks that need a GPU, as one prepared run for a machine that has one
# (CI has none), in under 8 minutes: builds its own bundles from the repo, runs
# the torch backend on CUDA, and writes one JSON of results (see
# scripts/gpu_check.py for the sections). Needs no network and installs nothing:
# a section whose package is missing says "skipped: <reason>".
#   bash scripts/gpu-check.sh [RESULTS.json] [--quick] [--budget-s 420]
# RESULTS.json defaults to $OUT/gpu-check.json where $OUT is set, else ./gpu-check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
RESULT="${OUT:-.}/gpu-check.json"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then RESULT="$1"; shift; fi
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: no GPU visible"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# 460 s: the script itself starts no section past its budget (420 s by default) and writes the JSON after each.
timeout 460 "$PY" scripts/gpu_check.py "$RESULT" "$@"
status=$?
echo "results: $RESULT (exit $status)"
exit $status
