#!/usr/bin/env bash
# The serving checks of issues 11 and 12 in one GPU call, on the Llama-3-8B shape (random
# weights, the Llama 3 tokenizer from TOKENIZER_DIR so that text streams token by token):
# 1. online: Poisson arrivals at ONLINE_RATE req/s (80% of the offline throughput), defaults;
# 2. HTTP against gRPC: the same 1,000 requests at once through pagedllm-bench (gRPC) and
#    benchmarks/http_stream_bench.py (HTTP+SSE), one server, prefix caching off so that the
#    second run finds nothing cached;
# 3. a per-kernel profile of decode steps at batch PROFILE_BATCH (tests/gpu/profile_decode.sh).
#   benchmarks/serving_h100.sh BUNDLE.tar.xz OUT_DIR TOKENIZER_DIR
set -uo pipefail
bundle=${1:?usage: serving_h100.sh BUNDLE OUT_DIR TOKENIZER_DIR}
out=${2:?usage: serving_h100.sh BUNDLE OUT_DIR TOKENIZER_DIR}
tokenizer=${3:?usage: serving_h100.sh BUNDLE OUT_DIR TOKENIZER_DIR}
http_port=8000
source benchmarks/h100_common.sh
workload="--workload sharegpt --num_requests 1000 --max_len 1024 --seed 1234"

log=$out/online.log
serve llama-3-8b "$log" --tokenizer "$tokenizer"
echo "=== online ${ONLINE_RATE:-34} req/s" >> "$log"
"$bin/pagedllm-bench" --address 127.0.0.1:$port --progress=false $floor_flags $workload \
  --mode online --request_rate "${ONLINE_RATE:-34}" >> "$log" 2>&1
stop "$log"

log=$out/http-vs-grpc.log
serve llama-3-8b "$log" --tokenizer "$tokenizer" --enable_prefix_caching=false
echo "=== grpc" >> "$log"
"$bin/pagedllm-bench" --address 127.0.0.1:$port --progress=false $floor_flags $workload \
  --concurrency 0 --save_workload "$out/workload.jsonl" >> "$log" 2>&1
echo "=== http" >> "$log"
python3 benchmarks/http_stream_bench.py --url "http://127.0.0.1:$http" \
  --workload "$out/workload.jsonl" --concurrency 1000 >> "$log" 2>&1
echo "=== grpc again" >> "$log"
"$bin/pagedllm-bench" --address 127.0.0.1:$port --progress=false $floor_flags $workload \
  --concurrency 0 >> "$log" 2>&1
stop "$log"

BATCH=${PROFILE_BATCH:-256} OUTPUT_LEN=24 timeout 200 tests/gpu/profile_decode.sh "$bin" \
  benchmarks/models/llama-3-8b "$out/profile" "${PROFILE_SKIP:-5000}" "${PROFILE_COUNT:-1200}" \
  > "$out/profile.log" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/machine.txt"
