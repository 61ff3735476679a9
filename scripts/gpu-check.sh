#!/usr/bin/env bash
# The checks that need a GPU, as one short run for a machine that has one
# (CI has none). Prints what ran and what skipped, with the reasons.
#   bash scripts/gpu-check.sh            # uses ./.venv if present, else python3
set -uo pipefail
cd "$(dirname "$0")/.."
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: no GPU visible"
"$PY" - <<'PY'
import importlib.util as u
for m in ("torch", "onnxruntime", "tensorrt", "pynvml", "nvidia.dali", "cudf"):
    print(f"{m:12} {'present' if u.find_spec(m.split('.')[0]) else 'absent'}")
try:
    import onnxruntime as ort; print("onnxruntime providers:", ort.get_available_providers())
except ImportError:
    pass
PY
"$PY" -m pytest -m "gpu or trt" -rs -v -p no:cacheprovider "$@"
