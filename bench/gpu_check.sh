#!/usr/bin/env bash
# The GPU check of issue #12 in one go: bench/bench_gpu.py with a Python whose torch sees CUDA.
#
#   bash bench/gpu_check.sh [bench_gpu.py arguments]     # e.g. --train-seconds 180
#
# Which Python, first that works:
#   1. $PYTHON, if set (used as is);
#   2. .venv/bin/python (carried along, or made by `make venv`), .venv-gpu/bin/python (made by an
#      earlier run of this script), python3 -- each only if its torch sees a CUDA device and it
#      imports what the bench needs (torch numpy scipy PIL skimage tqdm). The repository goes on
#      PYTHONPATH, so nothing has to be installed where those are already there (the H200 image
#      has all of them; `make venv` makes a CPU-only torch, which is skipped here);
#   3. a new venv .venv-gpu on top of the CUDA python3 (--system-site-packages keeps its CUDA
#      torch) with `pip install -e .[full]` (needs PyPI), or, where no registry can be reached,
#      with the wheels carried in .whl/ (`pip install --no-index --find-links .whl -e .`).
# Output: $OUT/bench_gpu.json (else out/bench_gpu.json) and the log $OUT/bench_gpu.log. The bench
# stops after GPU_CHECK_TIMEOUT seconds (default 540, inside a 600 s device call); the sections
# finished by then are in the JSON. Exit status: the bench's (1: a self-check failed).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-out}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/bench_gpu.log"
NEED='import torch, numpy, scipy, PIL, skimage, tqdm, sys; sys.exit(0 if torch.cuda.is_available() else 3)'

usable() { [ -n "$1" ] && command -v "$1" >/dev/null 2>&1 && PYTHONPATH="$PWD" "$1" -c "$NEED" >/dev/null 2>&1; }

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in .venv/bin/python .venv-gpu/bin/python python3; do
    if usable "$cand"; then PY=$cand; break; fi
  done
fi
if [ -z "$PY" ]; then
  BASE=""
  for cand in python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)' 2>/dev/null; then
      BASE=$cand; break
    fi
  done
  if [ -z "$BASE" ]; then
    echo "gpu_check: no Python here has a torch that sees a CUDA device; set PYTHON=/path/to/python" | tee -a "$LOG" >&2
    exit 2
  fi
  echo "gpu_check: making .venv-gpu on top of $BASE (its CUDA torch is kept)" | tee -a "$LOG"
  "$BASE" -m venv --system-site-packages .venv-gpu || exit 2
  if [ -d .whl ]; then
    .venv-gpu/bin/python -m pip install -q --no-index --find-links .whl --no-build-isolation -e . 2>&1 | tee -a "$LOG"
  else
    .venv-gpu/bin/python -m pip install -q -e ".[full]" 2>&1 | tee -a "$LOG"
  fi
  PY=.venv-gpu/bin/python
  if ! usable "$PY"; then
    echo "gpu_check: $PY still lacks one of torch(CUDA) numpy scipy pillow scikit-image tqdm" | tee -a "$LOG" >&2
    exit 2
  fi
fi

{
  echo "gpu_check: $(date -u +%FT%TZ) python $PY ($("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L
} 2>&1 | tee -a "$LOG"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
timeout "${GPU_CHECK_TIMEOUT:-540}" "$PY" bench/bench_gpu.py --device cuda "$@" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
[ "$rc" = 124 ] && echo "gpu_check: stopped after ${GPU_CHECK_TIMEOUT:-540} s; finished sections are in the JSON" | tee -a "$LOG"
exit "$rc"
