#!/usr/bin/env bash
# Async scheduling on one H100 (RESULTS.md, "Async scheduling"): the same requests through a
# coordinator with --async_scheduling on and off, the device's idle time between steps from the
# workers' CUDA events (pagedllm-bench's "device:" line).
#   benchmarks/async_h100.sh BUNDLE.tar.xz OUT_DIR
# The bundle: launch/make-bundle.sh BUNDLE.tar.xz build/bin/pagedllm-{coordinator,worker,bench}
#   build/bin/{kernels_cuda_step_tokens_test,kernels_cuda_attention_test,golden_models_test}
# 0. correctness on the GPU first: the step-token ops against the CPU, and the golden end-to-end
#    test (tp 1, async scheduling and launching ahead on by default);
# 1. batch 128 (--max_num_seqs 128): REQUESTS_128 (600) fixed requests of 128 + 256 tokens, async
#    on with the workers launching steps ahead (--launch_ahead auto), async on without it
#    (never), and async off;
# 2. default flags, 1000 ShareGPT-like requests (seed 1234, as throughput_h100.sh), Llama-3-8B;
#    async on, then off.
set -uo pipefail
bundle=${1:?usage: async_h100.sh BUNDLE OUT_DIR}
out=${2:?usage: async_h100.sh BUNDLE OUT_DIR}
source benchmarks/h100_common.sh
fixed="--num_requests ${REQUESTS_128:-600} --concurrency 0 --prompt_len 128 --output_len 256 --seed 7"
sharegpt="--workload sharegpt --num_requests ${REQUESTS:-1000} --concurrency 0 --max_len 1024 --seed 1234"

for test in kernels_cuda_step_tokens_test kernels_cuda_attention_test; do
  "$bin/$test" > "$out/$test.log" 2>&1
  echo "$test exit status $?" >> "$out/correctness.txt"
done
PAGEDLLM_BIN_DIR=$bin PAGEDLLM_SOURCE_DIR=$PWD PAGEDLLM_TEST_DEVICE=cuda \
  PAGEDLLM_TEST_DTYPE=float32 PAGEDLLM_SHARE_ONE_GPU=1 "$bin/golden_models_test" \
  > "$out/golden_models_test.log" 2>&1
echo "golden_models_test exit status $?" >> "$out/correctness.txt"

for setting in "true auto" "true never" "false auto"; do
  read -r async ahead <<< "$setting"
  log=$out/batch128-async-$async-ahead-$ahead.log
  serve llama-3-8b "$log" --max_num_seqs 128 --async_scheduling=$async --launch_ahead=$ahead
  # A warm-up run first: graphs captured, caches filled.
  "$bin/pagedllm-bench" --address 127.0.0.1:$port --num_requests 128 --concurrency 0 \
    --prompt_len 128 --output_len 32 --seed 3 --progress=false > /dev/null 2>&1
  "$bin/pagedllm-bench" --address 127.0.0.1:$port $fixed $floor_flags --progress=false \
    --output_json "$out/batch128-async-$async-ahead-$ahead.json" >> "$log" 2>&1
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
