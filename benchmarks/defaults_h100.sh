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
http_port=8000
source benchmarks/h100_common.sh
sharegpt="--workload sharegpt --num_requests 1000 --concurrency 0 --max_len 1024 --seed 1234"
bench() { "$bin/pagedllm-bench" --address 127.0.0.1:$port --progress=false $floor_flags "$@"; }

for config in ${CONFIGS:-512,4096 1024,8192 1024,16384}; do
  seqs=${config%,*} tokens=${config#*,}
  log=$out/offline-$seqs-$tokens.log
  serve llama-3-8b "$log" --max_num_seqs "$seqs" --max_num_batched_tokens "$tokens"
  bench $sharegpt --save_workload "$out/workload.jsonl" >> "$log" 2>&1
  stop "$log"
done

best=${BEST:-1024,8192}
log=$out/best.log
serve llama-3-8b "$log" --max_num_seqs "${best%,*}" --max_num_batched_tokens "${best#*,}"
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
