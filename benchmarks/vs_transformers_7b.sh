#!/usr/bin/env bash
# The Llama-2-7B shape against transformers in one GPU call (issue 11's 20x target): 1,000
# ShareGPT-like requests at once through pagedllm with the default flags, then transformers
# generate (static batches of HF_BATCH, the first HF_REQUESTS of the same workload file).
#   benchmarks/vs_transformers_7b.sh BUNDLE.tar.xz OUT_DIR
set -uo pipefail
bundle=${1:?usage: vs_transformers_7b.sh BUNDLE OUT_DIR}
out=${2:?usage: vs_transformers_7b.sh BUNDLE OUT_DIR}
source benchmarks/h100_common.sh
log=$out/llama-2-7b.log
serve llama-2-7b "$log"
"$bin/pagedllm-bench" --address "127.0.0.1:$port" --workload sharegpt \
  --num_requests 1000 --concurrency 0 --max_len 1024 --seed 1234 --progress=false \
  $floor_flags --save_workload "$out/workload.jsonl" >> "$log" 2>&1
stop "$log"
python3 benchmarks/transformers_throughput.py --model benchmarks/models/llama-2-7b \
  --load_format dummy --workload "$out/workload.jsonl" --batch_size "${HF_BATCH:-64}" \
  --max_requests "${HF_REQUESTS:-128}" --output_json "$out/transformers.json" > "$out/transformers.log" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/machine.txt"
