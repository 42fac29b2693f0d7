#!/usr/bin/env bash
# The runs that choose the CUDA defaults and check the serving targets, in one GPU call
# (RESULTS.md, "Choosing the defaults"), all on the Llama-3-8B shape with random weights:
# 1. offline, 1,000 ShareGPT-like requests at once, per (max_num_seqs, max_num_batched_tokens);
# 2. with the best of them: the same requests sampled (temperature 0.8, top-p 0.95), then the
#    same requests as 1,000 concurrent HTTP+SSE streams (benchmarks/http_stream_bench.py), then
#    online at a Poisson rate of ONLINE_RATE req/s, and decode steps at batch 256 and 512.
#   benchmarks/defaults_h100.sh BUNDLE.tar.xz OUT_DIR
# Environment: CONFIGS ("512,4096 1024,8192 1024,16384"), BEST ("1024,8192"),
# ONLINE_RATE (34), FLOOR_FLAGS.
set -uo pipefail
bundle=${1:?usage: defaults_h100.sh BUNDLE OUT_DIR}
out=${2:?usage: defaults_h100.sh BUNDLE OUT_DIR}
mkdir -p "$out" /tmp/pagedllm-gpu
tar -xJf "$bundle" -C /tmp/pagedllm-gpu
bin=/tmp/pagedllm-gpu/pagedllm/bin
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
floor_flags=${FLOOR_FLAGS:---memory_gbps 3015 --peak_tflops 783}
serve() {  # serve LOG FLAGS...: a coordinator on the 8B shape; sets $port, $http and $server
  local log=$1; shift
  rm -f /tmp/bench-port /tmp/bench-http
  "$bin/pagedllm-coordinator" --model benchmarks/models/llama-3-8b --load_format dummy --tp 1 \
    --device cuda --port 0 --port_file /tmp/bench-port --http_port 8000 \
    --http_port_file /tmp/bench-http --max_waiting 4000 "$@" >> "$log" 2>&1 &
  server=$!
  for _ in $(seq 900); do [ -f /tmp/bench-port ] && break; sleep 0.2; done
  port=$(cat /tmp/bench-port 2>/dev/null || echo 0)
  http=$(cat /tmp/bench-http 2>/dev/null || echo 0)
}
stop() { kill -TERM "$server"; wait "$server"; echo "coordinator exit status $?" >> "$1"; }
sharegpt="--workload sharegpt --num_requests 1000 --concurrency 0 --max_len 1024 --seed 1234"
bench() { "$bin/pagedllm-bench" --address 127.0.0.1:$port --progress=false $floor_flags "$@"; }

for config in ${CONFIGS:-512,4096 1024,8192 1024,16384}; do
  seqs=${config%,*} tokens=${config#*,}
  log=$out/offline-$seqs-$tokens.log
  serve "$log" --max_num_seqs "$seqs" --max_num_batched_tokens "$tokens"
  bench $sharegpt --save_workload "$out/workload.jsonl" >> "$log" 2>&1
  stop "$log"
done

best=${BEST:-1024,8192}
log=$out/best.log
serve "$log" --max_num_seqs "${best%,*}" --max_num_batched_tokens "${best#*,}"
echo "=== sampled" >> "$log"
bench $sharegpt --temperature 0.8 --top_p 0.95 >> "$log" 2>&1
echo "=== greedy (same server, after the sampled run)" >> "$log"
bench $sharegpt >> "$log" 2>&1
echo "=== http" >> "$log"
python3 benchmarks/http_stream_bench.py --url "http://127.0.0.1:$http" \
  --workload "$out/workload.jsonl" --concurrency 1000 >> "$log" 2>&1
echo "=== online ${ONLINE_RATE:-34} req/s" >> "$log"
bench $sharegpt --mode online --request_rate "${ONLINE_RATE:-34}" >> "$log" 2>&1
for batch in 256 512; do
  echo "=== decode batch $batch" >> "$log"
  bench --num_requests "$batch" --concurrency "$batch" --prompt_len 128 --output_len 128 >> "$log" 2>&1
done
stop "$log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/machine.txt"
