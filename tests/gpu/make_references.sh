#!/usr/bin/env bash
# Regenerates the transformers references that need torch + transformers, on the GPU node (all the
# computation is on its CPU, in float32), from the repo root:
#   tests/gpu/make_references.sh
# 1. tools/make_golden_models.py --only odd-vocab-tied: builds that model in
#    tests/data/models/odd-vocab-tied and adds it to manifest.json; the other models' folders are
#    not touched;
# 2. tools/make_beam_references.py for the five golden models: tests/data/models/<model>/beam.json.
# With $OUT set, each step's output is also logged to $OUT/<step>.log. Stops at the first step
# that fails; the exit status is non-zero then.
set -euo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
models_dir=tests/data/models
beam_models="${BEAM_MODELS:-mha-untied,gqa-tied,mqa-llama3-rope,gqa-wide-head,odd-vocab-tied}"
if [ ! -f tools/make_golden_models.py ] || [ ! -d "$models_dir" ]; then
  echo "run from the repo root (no tools/make_golden_models.py or $models_dir here: $PWD)" >&2
  exit 1
fi
if ! python3 -c 'import torch, transformers, safetensors' 2>/dev/null; then
  echo "python3 cannot import torch, transformers and safetensors; run this on the GPU node" >&2
  python3 -c 'import torch, transformers, safetensors' || true
  exit 1
fi
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; fi
step() {  # step NAME COMMAND...: runs it, tees it to $OUT/NAME.log when $OUT is set
  local name="$1"; shift
  echo "=== $name: $*"
  local rc=0
  if [ -n "${OUT:-}" ]; then
    "$@" 2>&1 | tee "$OUT/$name.log" || rc=$?
  else
    "$@" || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    echo "=== $name FAILED (exit $rc)" >&2
    exit "$rc"
  fi
}
step make_golden_models python3 tools/make_golden_models.py --out "$models_dir" --only odd-vocab-tied
step make_beam_references python3 tools/make_beam_references.py --out-root "$models_dir" \
  --models "$beam_models"
echo "=== done; changed under $models_dir:"
git status --short -- "$models_dir" 2>/dev/null || ls -l "$models_dir"/*
