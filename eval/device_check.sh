#!/usr/bin/env bash
# The accelerator check on a bare machine, in one command: a virtualenv, JAX for the chip found
# (CUDA 12 when nvidia-smi exists, TPU when /dev/accel0 or /dev/vfio exists, else CPU), this
# project's requirements, the PyTorch reference (torch, gliner 0.2.29) unless REFERENCE=0, then
#     python -m eval.device_check --out OUT_DIR [ARGS...]
# Usage: eval/device_check.sh OUT_DIR [--dry-run] [--budget-s S]
# A failed reference install is reported and the check runs without it (it records "skipped").
# A machine without the package index: carry a wheelhouse and set PIP_NO_INDEX=1
# PIP_FIND_LINKS=DIR (pip reads both from the environment).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: eval/device_check.sh OUT_DIR [--dry-run] [--budget-s S]}"
shift
VENV="${VENV:-/tmp/gliner_jax_device_venv}"
PY="${PYTHON:-python3}"
t0=$(date +%s)
if command -v nvidia-smi >/dev/null 2>&1; then
  JAX="jax[cuda12]"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
elif [ -e /dev/accel0 ] || [ -d /dev/vfio ]; then
  JAX="jax[tpu]"
else
  JAX="jax"
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$JAX" -r requirements.txt
if [ "${REFERENCE:-1}" = "1" ]; then
  # one resolve with JAX's CUDA libraries; gliner 0.2.29 needs transformers < 5.17
  "$VENV/bin/python" -m pip install -q "$JAX" -r requirements.txt torch gliner==0.2.29 \
    "transformers<5.17" || echo "device_check.sh: the reference did not install; going on"
fi
echo "device_check.sh: installed in $(( $(date +%s) - t0 )) s"
PYTHONPATH="$PWD" exec "$VENV/bin/python" -m eval.device_check --out "$OUT" "$@"
