#!/usr/bin/env bash
# pagedllm against the PagedAttention paper's baseline (Hugging Face transformers generate with
# static batching at its best batch size), on the same requests, one after the other on one GPU:
#   1. pagedllm-coordinator (random weights, tp 1) and pagedllm-bench with a ShareGPT-like
#      workload, every request at once; the bench saves the requests it sent (W.jsonl);
#   2. the coordinator is stopped (its workers with it, so the GPU is free);
#   3. benchmarks/transformers_throughput.py on W.jsonl and the same model;
#   4. one line: model, requests, pagedllm req/s, transformers req/s, ratio.
# Usage (GPU node, repo root, a bundle unpacked so that $BIN holds the binaries):
#   benchmarks/vs_transformers.sh MODEL [OUT_DIR] [NUM_REQUESTS]
# MODEL: a directory under benchmarks/models (llama-3-8b, llama-2-7b) or a path to a model
# directory (config.json). OUT_DIR: default $OUT, else /tmp/vs-transformers. NUM_REQUESTS: 500.
# Environment: BIN (/tmp/pagedllm-gpu/pagedllm/bin), PAGEDLLM_FLAGS (more coordinator flags,
# split on spaces), SEED (1234), MAX_LEN (1024), HF_FLAGS (more transformers_throughput.py flags,
# e.g. "--batch_size 64" to skip its batch size search, or "--batch_sizes 16,32,64,128"),
# PYTHON (python3).
# Files in OUT_DIR: coordinator.log, bench.log, workload.jsonl, pagedllm.json, transformers.log,
# transformers.json, summary.txt (the line) and vs.json (the same as JSON).
# Time: transformers takes ~30 ms (batch 1) to ~60 ms (batch 64) per decode step for the 8B shape
# on an H100, and a ShareGPT-like batch runs ~500 steps, so its default search (batch sizes 1 to
# 256) takes several minutes; HF_FLAGS="--batch_sizes 32,64,128,256" or "--batch_size B" shorten it.
set -euo pipefail

usage="usage: benchmarks/vs_transformers.sh MODEL [OUT_DIR] [NUM_REQUESTS]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
model=$1
out=${2:-${OUT:-/tmp/vs-transformers}}
num_requests=${3:-500}
BIN=${BIN:-/tmp/pagedllm-gpu/pagedllm/bin}
PYTHON=${PYTHON:-python3}
seed=${SEED:-1234}
max_len=${MAX_LEN:-1024}
read -r -a pagedllm_flags <<< "${PAGEDLLM_FLAGS:-}"
read -r -a hf_flags <<< "${HF_FLAGS:-}"

die() { echo "vs_transformers: error: $*" >&2; exit 1; }

if [ -f "$model/config.json" ]; then
  model_dir=$model
elif [ -f "$repo/benchmarks/models/$model/config.json" ]; then
  model_dir=$repo/benchmarks/models/$model
else
  die "no model '$model': neither $model/config.json nor benchmarks/models/$model/config.json" \
      "(there: $(cd "$repo/benchmarks/models" && echo */ | tr -d /))"
fi
model_name=$(basename "$model_dir")
[[ "$num_requests" =~ ^[1-9][0-9]*$ ]] || die "NUM_REQUESTS must be a positive integer, got '$num_requests'"
for exe in pagedllm-coordinator pagedllm-bench; do
  [ -x "$BIN/$exe" ] || die "$BIN/$exe is missing or not executable (set BIN to the bundle's bin dir)"
done
# Fail now rather than after the pagedllm half has run.
"$PYTHON" -c "import torch, transformers" 2>/dev/null \
  || die "$PYTHON cannot import torch and transformers (set PYTHON)"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || die "torch sees no CUDA device"
# The coordinator keeps at most --max_waiting (1024) requests queued; the bench sends all at once.
if [ "$num_requests" -gt 1024 ] && [[ " ${pagedllm_flags[*]-} " != *max_waiting* ]]; then
  pagedllm_flags+=("--max_waiting=$num_requests")
fi

mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
port_file=$out/coordinator.port workload=$out/workload.jsonl
rm -f "$port_file" "$workload" "$out/pagedllm.json" "$out/transformers.json"

server="" group=""
wait_gone() {  # wait_gone TARGET SECONDS: true once no process of TARGET (pid or -pgid) is left
  local _
  for _ in $(seq $(($2 * 2))); do
    kill -0 -- "$1" 2>/dev/null || return 0
    sleep 0.5
  done
  ! kill -0 -- "$1" 2>/dev/null
}
stop_server() {  # the coordinator stops its workers on SIGTERM; whatever is left of its group
  [ -n "$server" ] || return 0  # after that is ended too, so the GPU is free
  kill -TERM "$server" 2>/dev/null || true
  wait_gone "$server" 60 || echo "vs_transformers: the coordinator outlived SIGTERM by 60 s" >&2
  if ! wait_gone "$group" 0; then
    kill -TERM -- "$group" 2>/dev/null || true
    wait_gone "$group" 10 || kill -KILL -- "$group" 2>/dev/null || true
  fi
  wait "$server" 2>/dev/null || true
  server="" group=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

echo "=== $model_name, $num_requests requests, seed $seed, max_len $max_len; logs in $out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  | tee "$out/machine.txt" || true

# 1. pagedllm. setsid: the coordinator leads its own process group, so that the workers mpirun
# starts can be waited for (and killed if they hang) as one group.
setsid "$BIN/pagedllm-coordinator" --model "$model_dir" --load_format dummy --tp 1 --device cuda \
  --port 0 --port_file "$port_file" ${pagedllm_flags[@]+"${pagedllm_flags[@]}"} \
  > "$out/coordinator.log" 2>&1 &
server=$!
# Its process group when setsid made one (it did not fork), else the coordinator alone.
if [ "$(ps -o pgid= -p "$server" 2>/dev/null | tr -d ' ')" = "$server" ]; then
  group=-$server
else
  group=$server
fi
deadline=$((SECONDS + 300))
until [ -s "$port_file" ]; do
  if ! kill -0 "$server" 2>/dev/null; then
    tail -20 "$out/coordinator.log" >&2
    die "the coordinator exited before it was serving (log: $out/coordinator.log)"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    tail -20 "$out/coordinator.log" >&2
    die "the coordinator was not serving after 300 s (log: $out/coordinator.log)"
  fi
  sleep 0.5
done
address=127.0.0.1:$(cat "$port_file")
echo "=== pagedllm serving at $address"

bench_status=0
"$BIN/pagedllm-bench" --address "$address" --workload sharegpt --num_requests "$num_requests" \
  --concurrency 0 --max_len "$max_len" --seed "$seed" --save_workload "$workload" \
  --output_json "$out/pagedllm.json" > "$out/bench.log" 2>&1 || bench_status=$?
cat "$out/bench.log"
if [ "$bench_status" -ne 0 ]; then
  if grep -q "Unknown command line flag" "$out/bench.log"; then
    die "this pagedllm-bench lacks --save_workload / --output_json / --concurrency 0: rebuild the bundle"
  fi
  die "pagedllm-bench exited with status $bench_status (log: $out/bench.log)"
fi
[ -s "$workload" ] || die "pagedllm-bench wrote no workload file $workload"
[ -s "$out/pagedllm.json" ] || die "pagedllm-bench wrote no report $out/pagedllm.json"
stop_server
# Its workers' GPU memory must be back before transformers looks for the largest batch that fits.
used=""
for _ in $(seq 120); do
  used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1) \
    || { used=""; break; }
  [ "${used:-0}" -lt 2048 ] && break
  sleep 0.5
done
echo "=== pagedllm stopped${used:+; GPU memory in use: $used MiB}"
[ "${used:-0}" -lt 2048 ] \
  || echo "vs_transformers: warning: $used MiB still in use on the GPU after 60 s" >&2

# 2. transformers, static batching, on the same requests.
"$PYTHON" -u "$here/transformers_throughput.py" --model "$model_dir" --load_format dummy \
  --workload "$workload" --output_json "$out/transformers.json" \
  ${hf_flags[@]+"${hf_flags[@]}"} 2>&1 | tee "$out/transformers.log" \
  || die "transformers_throughput.py failed (log: $out/transformers.log)"

# 3. The line.
"$PYTHON" "$here/transformers_throughput.py" --compare "$out/pagedllm.json" \
  "$out/transformers.json" --pagedllm_log "$out/bench.log" --label "$model_name" \
  --output_json "$out/vs.json" | tee "$out/summary.txt"
