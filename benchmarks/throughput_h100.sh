#!/usr/bin/env bash
# One GPU session's throughput evidence (RESULTS.md, "Offline throughput at the floor"), on one
# H100 from a bundle: every run is pagedllm-bench against a fresh coordinator (random weights).
#   benchmarks/throughput_h100.sh BUNDLE.tar.xz OUT_DIR
# 1. the flags that crashed a worker before (--max_num_seqs 1024 --max_num_batched_tokens 8192),
#    1000 ShareGPT-like requests at once: every request must succeed;
# 2. default flags, the same 1000 requests (saved as workload.jsonl), with the run's floor; then
#    20 lone 144-token requests (time to first token, prefill step times);
# 3. transformers generate, static batching, on the first HF_REQUESTS of the same requests;
# 4. the Llama-2-7B shape with default flags.
# Environment: REQUESTS (1000), HF_REQUESTS (128), HF_BATCH (64), SKIP_HF, SKIP_7B, FLOOR_FLAGS
# (the bandwidth and GEMM peak for the floor; default the H100's measured ones).
set -uo pipefail
bundle=${1:?usage: throughput_h100.sh BUNDLE OUT_DIR}
out=${2:?usage: throughput_h100.sh BUNDLE OUT_DIR}
source benchmarks/h100_common.sh
sharegpt="--workload sharegpt --num_requests ${REQUESTS:-1000} --concurrency 0 --max_len 1024 --seed 1234"

log=$out/crash-flags.log
serve llama-3-8b "$log" --max_num_seqs 1024 --max_num_batched_tokens 8192
"$bin/pagedllm-bench" --address 127.0.0.1:$port $sharegpt $floor_flags --progress=false >> "$log" 2>&1
stop "$log"

log=$out/llama-3-8b.log
serve llama-3-8b "$log"
"$bin/pagedllm-bench" --address 127.0.0.1:$port $sharegpt $floor_flags --progress=false \
  --save_workload "$out/workload.jsonl" --output_json "$out/llama-3-8b.json" >> "$log" 2>&1
echo "=== lone requests" >> "$log"
"$bin/pagedllm-bench" --address 127.0.0.1:$port --num_requests 20 --concurrency 1 \
  --prompt_len 144 --output_len 16 --seed 7 --progress=false >> "$log" 2>&1
stop "$log"

[ -z "${SKIP_HF:-}" ] && python3 benchmarks/transformers_throughput.py --model benchmarks/models/llama-3-8b \
  --load_format dummy --workload "$out/workload.jsonl" --batch_size "${HF_BATCH:-64}" \
  --max_requests "${HF_REQUESTS:-128}" --output_json "$out/transformers.json" > "$out/transformers.log" 2>&1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/machine.txt"
[ -n "${SKIP_7B:-}" ] && exit 0
log=$out/llama-2-7b.log
serve llama-2-7b "$log"
"$bin/pagedllm-bench" --address 127.0.0.1:$port $sharegpt $floor_flags --progress=false >> "$log" 2>&1
stop "$log"
