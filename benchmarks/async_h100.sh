#!/usr/bin/env bash
# Async scheduling on one H100 (RESULTS.md, "Async scheduling"): the same requests through a
# coordinator with --async_scheduling on and off, the device's idle time between steps from the
# workers' CUDA events (pagedllm-bench's "device:" line).
#   benchmarks/async_h100.sh BUNDLE.tar.xz OUT_DIR
# 1. batch 128 (--max_num_seqs 128): REQUESTS_128 (600) fixed requests of 128 + 256 tokens;
# 2. default flags, 1000 ShareGPT-like requests (seed 1234, as throughput_h100.sh), Llama-3-8B;
# each with async on, then off.
set -uo pipefail
bundle=${1:?usage: async_h100.sh BUNDLE OUT_DIR}
out=${2:?usage: async_h100.sh BUNDLE OUT_DIR}
mkdir -p "$out" /tmp/pagedllm-gpu
tar -xJf "$bundle" -C /tmp/pagedllm-gpu
bin=/tmp/pagedllm-gpu/pagedllm/bin
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
floor_flags=${FLOOR_FLAGS:---memory_gbps 3015 --peak_tflops 783}
serve() {  # serve MODEL LOG FLAGS...: starts a coordinator, sets $port and $server
  local model=$1 log=$2; shift 2
  rm -f /tmp/bench-port
  "$bin/pagedllm-coordinator" --model "benchmarks/models/$model" --load_format dummy --tp 1 \
    --device cuda --port 0 --port_file /tmp/bench-port --http_port 0 --max_waiting 4000 "$@" \
    >> "$log" 2>&1 &
  server=$!
  for _ in $(seq 900); do [ -f /tmp/bench-port ] && break; sleep 0.2; done
  port=$(cat /tmp/bench-port 2>/dev/null || echo 0)
}
stop() { kill -TERM "$server"; wait "$server"; echo "coordinator exit status $?" >> "$1"; }
fixed="--num_requests ${REQUESTS_128:-600} --concurrency 0 --prompt_len 128 --output_len 256 --seed 7"
sharegpt="--workload sharegpt --num_requests ${REQUESTS:-1000} --concurrency 0 --max_len 1024 --seed 1234"

for async in true false; do
  log=$out/batch128-async-$async.log
  serve llama-3-8b "$log" --max_num_seqs 128 --async_scheduling=$async
  # A warm-up run first: graphs captured, caches filled.
  "$bin/pagedllm-bench" --address 127.0.0.1:$port --num_requests 128 --concurrency 0 \
    --prompt_len 128 --output_len 32 --seed 3 --progress=false > /dev/null 2>&1
  "$bin/pagedllm-bench" --address 127.0.0.1:$port $fixed $floor_flags --progress=false \
    --output_json "$out/batch128-async-$async.json" >> "$log" 2>&1
  stop "$log"
done
for async in true false; do
  log=$out/sharegpt-async-$async.log
  serve llama-3-8b "$log" --async_scheduling=$async
  "$bin/pagedllm-bench" --address 127.0.0.1:$port $sharegpt $floor_flags --progress=false \
    --output_json "$out/sharegpt-async-$async.json" >> "$log" 2>&1
  stop "$log"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/machine.txt"
