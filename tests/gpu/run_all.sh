#!/usr/bin/env bash
# Everything that needs a GPU, in one go, on a GPU node, from a bundle made on a build machine:
#   (build machine) cmake -S . -B build-cuda -DPAGEDLLM_CUDA=ON ... && cmake --build build-cuda -j
#                   launch/make-bundle.sh .bundle/pagedllm.tar.xz  $(ls build-cuda/bin/*)
#   (GPU node, repo root) tests/gpu/run_all.sh .bundle/pagedllm.tar.xz OUT_DIR [STAGES]
# STAGES (default all): unit e2e compare bench serve sampled; also throughput (not in the default
# set: ~8 minutes, benchmarks/throughput_h100.sh: the crash flags, 1000 ShareGPT-like requests with
# the floor, lone-request TTFT, transformers on the same requests, the 7B shape). Logs go to
# OUT_DIR; exit status is non-zero when any stage failed.
set -uo pipefail
bundle="${1:?usage: run_all.sh BUNDLE.tar.xz OUT_DIR [unit] [e2e] [compare] [bench]}"
out="${2:?usage: run_all.sh BUNDLE.tar.xz OUT_DIR [STAGES]}"
shift 2
stages="${*:-unit e2e compare bench serve sampled}"
mkdir -p "$out" /tmp/pagedllm-gpu
tar -xJf "$bundle" -C /tmp/pagedllm-gpu
bin=/tmp/pagedllm-gpu/pagedllm/bin
export PAGEDLLM_BIN_DIR="$bin" PAGEDLLM_SOURCE_DIR="$PWD"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/machine.txt"
status=0
run() {  # run NAME COMMAND...: logs to $out/NAME.log, records failure
  local name="$1"; shift
  echo "=== $name: $*"
  if ! "$@" > "$out/$name.log" 2>&1; then
    echo "=== $name FAILED (tail of $out/$name.log):"; tail -30 "$out/$name.log"; status=1
  else
    tail -3 "$out/$name.log"
  fi
}
require() {  # require NAME...: each must be an executable in the bundle, else the stage fails
  local name
  for name in "$@"; do
    [ -x "$bin/$name" ] || { echo "=== $name: missing from the bundle"; status=1; }
  done
}
if [[ " $stages " == *" unit "* ]]; then
  require kernels_cuda_argmax_test kernels_cuda_attention_test kernels_cuda_device_test \
          kernels_cuda_gemv_test kernels_cuda_kv_swap_test kernels_cuda_ops_test \
          kernels_cuda_sample_rows_test
  for test in "$bin"/kernels_cuda_*_test; do
    [ -x "$test" ] && run "$(basename "$test")" "$test"
  done
fi
if [[ " $stages " == *" e2e "* ]]; then
  # The CPU end-to-end suites again, on the GPU in float32 (exact against transformers' float32);
  # tp > 1 shares the one GPU (PAGEDLLM_SHARE_ONE_GPU: NCCL over sockets, correctness only).
  export PAGEDLLM_TEST_DEVICE=cuda PAGEDLLM_TEST_DTYPE=float32 PAGEDLLM_SHARE_ONE_GPU=1
  for test in golden_models_test bundled_model_test serving_errors_test text_serving_test \
              sharing_test sampling_filters_test seeded_sampling_test; do
    [ -x "$bin/$test" ] || { echo "=== $test: missing from the bundle"; status=1; continue; }
    run "$test" "$bin/$test"
  done
  unset PAGEDLLM_TEST_DEVICE PAGEDLLM_TEST_DTYPE PAGEDLLM_SHARE_ONE_GPU
fi
if [[ " $stages " == *" compare "* ]]; then
  run compare_with_transformers python3 tests/gpu/compare_with_transformers.py --bin "$bin" --out "$out"
fi
if [[ " $stages " == *" bench "* ]]; then
  require attention_bench cuda_ops_bench sample_rows_bench
  for bench in "$bin"/*_bench; do
    [ -x "$bench" ] && run "$(basename "$bench")" "$bench"
  done
fi
serve_bench() {  # serve_bench MODEL NAME_SUFFIX BENCH_FLAGS...: batch 1, 32, 256 decode steps
  local model="$1" suffix="$2"; shift 2
  local port_file="/tmp/pagedllm-bench-port-$model"
  rm -f "$port_file"
  "$bin/pagedllm-coordinator" --model "benchmarks/models/$model" --load_format dummy --tp 1 \
    --device cuda --port 0 --port_file "$port_file" > "$out/serve-$model$suffix.log" 2>&1 &
  local server=$!
  for _ in $(seq 600); do [ -f "$port_file" ] && break; sleep 0.2; done
  if [ ! -f "$port_file" ]; then
    echo "=== serve $model FAILED to start"; tail -20 "$out/serve-$model$suffix.log"; status=1
    kill $server; return
  fi
  for batch in 1 32 256; do
    run "bench-$model$suffix-b$batch" "$bin/pagedllm-bench" --address "127.0.0.1:$(cat "$port_file")" \
      --num_requests "$batch" --concurrency "$batch" --prompt_len 128 --output_len 128 "$@"
  done
  kill -TERM $server; wait $server
}
if [[ " $stages " == *" serve "* || " $stages " == *" sampled "* ]]; then
  require pagedllm-coordinator pagedllm-worker pagedllm-bench
fi
if [[ " $stages " == *" serve "* ]]; then
  # Decode steps of 7B/8B shapes (random weights) at batch 1, 32, 256 against the bytes floor.
  # SERVE_MODELS narrows the list (e.g. for an A/B run of one model).
  for model in ${SERVE_MODELS:-llama-2-7b llama-3-8b}; do serve_bench "$model" ""; done
fi
if [[ " $stages " == *" sampled "* ]]; then
  # The same with sampling on the GPU (SampleRows) instead of the greedy argmax.
  serve_bench llama-3-8b "-sampled" --temperature 0.8 --top_p 0.9 --top_k 50
fi
if [[ " $stages " == *" throughput "* ]]; then
  run throughput benchmarks/throughput_h100.sh "$bundle" "$out/throughput"
fi
exit $status
