#!/usr/bin/env bash
# Tensor-parallel scaling on one multi-GPU node, from a bundle made on a build machine (see
# run_all.sh for how to make it; it must hold pagedllm-allreduce-bench, -coordinator, -worker and
# -bench):
#   (GPU node, repo root) tests/gpu/scaling.sh .bundle/pagedllm.tar.xz OUT_DIR ["1 2 4 8"]
# For each tp (default 1 2 4 8; values above the node's GPU count are skipped):
#   1. pagedllm-allreduce-bench under mpirun -np tp (bfloat16, the decode sizes and 1M..64M);
#   2. for llama-3-8b, and llama-3-70b when tp >= 2 (benchmarks/models/, random weights): a
#      coordinator with --tp tp, then pagedllm-bench at batch 1 and 64 (128 prompt / 128 output
#      tokens) and an offline-throughput run: --workload sharegpt when this pagedllm-bench has it
#      (ShareGPT-like lengths), else fixed lengths of ShareGPT's means (161 prompt, 338 output).
# Logs go to OUT_DIR/tp$tp/; a summary table (also OUT_DIR/summary.tsv) ends the run. Exit status
# is non-zero when any step failed. Knobs (environment): SCALING_MODELS (default
# "llama-3-8b llama-3-70b"), OFFLINE_REQUESTS (512), GPU_MEMORY_UTILIZATION (0.9), MEMORY_GBPS
# (the copy bandwidth the floors use; 3000 = H100 80GB, measure it on other GPUs),
# ALLREDUCE_DTYPE (bfloat16), ALLREDUCE_ITERS (100).
set -uo pipefail
usage="usage: scaling.sh BUNDLE.tar.xz OUT_DIR [\"1 2 4 8\"]"
bundle="${1:?$usage}"
out="${2:?$usage}"
tps="${3:-1 2 4 8}"
models="${SCALING_MODELS:-llama-3-8b llama-3-70b}"
offline_requests="${OFFLINE_REQUESTS:-512}"
mkdir -p "$out" /tmp/pagedllm-gpu
tar -xJf "$bundle" -C /tmp/pagedllm-gpu || { echo "cannot unpack $bundle"; exit 1; }
bin=/tmp/pagedllm-gpu/pagedllm/bin
for tool in pagedllm-allreduce-bench pagedllm-coordinator pagedllm-worker pagedllm-bench; do
  [ -x "$bin/$tool" ] || { echo "$bin/$tool missing from the bundle"; exit 1; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/machine.txt"
nvidia-smi topo -m > "$out/topology.txt" 2>&1
num_gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
echo "$num_gpus GPUs; tp values: $tps"
bench_help=$("$bin/pagedllm-bench" --helpfull 2>&1)  # exits non-zero after the help
if grep -q -- '-workload' <<< "$bench_help"; then
  offline_flags=(--workload sharegpt)
  offline_desc="sharegpt"
else
  offline_flags=(--prompt_len 161 --output_len 338)
  offline_desc="fixed 161/338"
fi
echo "offline workload: $offline_desc, $offline_requests requests"

status=0
server=""
trap '[ -n "$server" ] && kill -TERM "$server" 2>/dev/null' EXIT
run() {  # run LOG COMMAND...: output to LOG, records failure
  local log="$1"; shift
  echo "=== $(basename "$log" .log): $*"
  if ! "$@" > "$log" 2>&1; then
    echo "=== FAILED (tail of $log):"; tail -30 "$log"; status=1; return 1
  fi
  tail -4 "$log"
}

serve_bench() {  # serve_bench TP MODEL DIR: a coordinator with --tp TP, then the three benches
  local tp="$1" model="$2" dir="$3"
  local port_file="$dir/port-$model"
  rm -f "$port_file"
  "$bin/pagedllm-coordinator" --model "benchmarks/models/$model" --load_format dummy --tp "$tp" \
    --device cuda --port 0 --port_file "$port_file" --mpirun_args "--bind-to none" \
    --worker_env NCCL_NVLS_ENABLE=0 --worker_start_timeout_s 900 \
    --gpu_memory_utilization "${GPU_MEMORY_UTILIZATION:-0.9}" > "$dir/serve-$model.log" 2>&1 &
  server=$!
  for _ in $(seq 4500); do
    [ -f "$port_file" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  if [ ! -f "$port_file" ]; then
    echo "=== serve $model tp $tp FAILED to start (tail of $dir/serve-$model.log):"
    tail -30 "$dir/serve-$model.log"; status=1
    kill -TERM "$server" 2>/dev/null; wait "$server"; server=""
    return
  fi
  local address
  address="127.0.0.1:$(cat "$port_file")"
  # One short request first, so that no one-time start-up cost lands in the batch-1 numbers.
  run "$dir/warmup-$model.log" "$bin/pagedllm-bench" --address "$address" --num_requests 1 \
    --concurrency 1 --prompt_len 16 --output_len 16
  for batch in 1 64; do
    run "$dir/bench-$model-b$batch.log" "$bin/pagedllm-bench" --address "$address" \
      --num_requests "$batch" --concurrency "$batch" --prompt_len 128 --output_len 128 \
      --memory_gbps "${MEMORY_GBPS:-3000}"
  done
  run "$dir/offline-$model.log" "$bin/pagedllm-bench" --address "$address" \
    --num_requests "$offline_requests" --concurrency "$offline_requests" "${offline_flags[@]}"
  kill -TERM "$server"; wait "$server"; server=""
}

for tp in $tps; do
  if [ "$tp" -gt "$num_gpus" ]; then
    echo "=== tp $tp skipped: $num_gpus GPUs"
    continue
  fi
  dir="$out/tp$tp"
  mkdir -p "$dir"
  rm -f "$dir"/*.log "$dir"/port-*  # a rerun's summary must not read an earlier run's logs
  run "$dir/allreduce.log" mpirun --bind-to none -np "$tp" -x NCCL_NVLS_ENABLE=0 \
    "$bin/pagedllm-allreduce-bench" --device cuda --dtype "${ALLREDUCE_DTYPE:-bfloat16}" \
    --iters "${ALLREDUCE_ITERS:-100}"
  for model in $models; do
    [ "$model" = llama-3-70b ] && [ "$tp" -lt 2 ] && continue
    serve_bench "$tp" "$model" "$dir"
  done
done

# Summary, parsed from the logs ("-" where a log is missing or a run failed).
decode_field() {  # decode_field LOG N: N=1 step ms, N=2 floor ms of pagedllm-bench's decode line
  [ -f "$1" ] || { echo -; return; }
  local value
  value=$(sed -n 's/^decode: .* steps, \([0-9.]*\) ms per step.*floor \([0-9.]*\) ms.*/\1 \2/p' \
    "$1" | awk -v n="$2" '{print $n}')
  echo "${value:--}"
}
allreduce_us() {  # allreduce_us LOG ELEMENTS: mean µs of one synced all-reduce of that size
  [ -f "$1" ] || { echo -; return; }
  local value
  value=$(awk -v e="$2" '$1 == "allreduce" && $7 == e {print $11}' "$1")
  echo "${value:--}"
}
summary="$out/summary.tsv"
printf 'tp\tmodel\tb1_step_ms\tb1_floor_ms\tb1_speedup\tb64_step_ms\tb64_floor_ms\t%s\t%s\t%s\n' \
  "offline_tok/s/GPU" "ar_b1_us" "ar_b64_us" > "$summary"
for tp in $tps; do
  [ "$tp" -gt "$num_gpus" ] && continue
  dir="$out/tp$tp"
  for model in $models; do
    [ "$model" = llama-3-70b ] && [ "$tp" -lt 2 ] && continue
    hidden=$(grep -o '"hidden_size": *[0-9]*' "benchmarks/models/$model/config.json" | grep -o '[0-9]*$')
    b1=$(decode_field "$dir/bench-$model-b1.log" 1)
    b1_floor=$(decode_field "$dir/bench-$model-b1.log" 2)
    b1_tp1=$(decode_field "$out/tp1/bench-$model-b1.log" 1)
    speedup=$(awk -v a="$b1_tp1" -v b="$b1" \
      'BEGIN {if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b}')
    b64=$(decode_field "$dir/bench-$model-b64.log" 1)
    b64_floor=$(decode_field "$dir/bench-$model-b64.log" 2)
    offline=-
    if [ -f "$dir/offline-$model.log" ]; then
      offline=$(sed -n 's/^wall .* requests\/s, \([0-9.]*\) output tokens\/s.*/\1/p' \
        "$dir/offline-$model.log" | awk -v tp="$tp" '{printf "%.1f", $1 / tp}')
      offline="${offline:--}"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tp" "$model" "$b1" "$b1_floor" \
      "$speedup" "$b64" "$b64_floor" "$offline" \
      "$(allreduce_us "$dir/allreduce.log" "$hidden")" \
      "$(allreduce_us "$dir/allreduce.log" $((hidden * 64)))" >> "$summary"
  done
done
echo
echo "=== summary (step and floor: decode ms at 128/128 tokens; b1_speedup: tp1's b1 step over this"
echo "    one; offline: $offline_desc, output tokens/s over tp; ar: ${ALLREDUCE_DTYPE:-bfloat16}"
echo "    all-reduce of [batch, hidden], mean of synced single calls):"
if command -v column > /dev/null; then column -t -s $'\t' "$summary"; else cat "$summary"; fi
exit $status
