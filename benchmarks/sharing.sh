#!/usr/bin/env bash
# The sharing half, measured (issue: memory sharing): KV waste over a ShareGPT-like run, blocks
# and throughput of parallel sampling and beam search against the same work as separate requests
# (Alpaca-like prompts), and time to first token / throughput of requests sharing a long system
# prompt with and without prefix caching.
#   benchmarks/sharing.sh BIN_DIR MODEL_DIR OUT_DIR [cpu|cuda] [extra coordinator flags...]
# CPU (the counts):  benchmarks/sharing.sh build/bin models/pagedllm-tiny-py /tmp/sharing cpu
# GPU (the speed):   benchmarks/sharing.sh bin benchmarks/models/llama-3-8b out cuda \
#                      --load_format dummy
# Environment: SHAREGPT_REQUESTS (1000), ALPACA_REQUESTS (200), PREFIX_LEN (1000), MAX_LEN (1024:
# a ShareGPT prompt and its output together at most that; until 2026-12-06 pagedllm-bench capped
# each at half instead, which the RESULTS.md figures of before used), PREFIX_MAX_LEN (256: the
# same for the prompts after the shared prefix), SECTIONS ("waste sharing prefix").
set -uo pipefail
bin=$1 model=$2 out=$3 device=${4:-cpu}
shift 4 || shift $#
extra=("$@")
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
sharegpt=${SHAREGPT_REQUESTS:-1000} alpaca=${ALPACA_REQUESTS:-200} prefix=${PREFIX_LEN:-1000}
max_len=${MAX_LEN:-1024} prefix_max_len=${PREFIX_MAX_LEN:-256}
sections=${SECTIONS:-waste sharing prefix}
server=""
trap '[ -n "$server" ] && kill -TERM "$server" 2>/dev/null; wait' EXIT
summary="$out/summary.txt"
: > "$summary"

serve() {  # serve NAME FLAGS...: starts a coordinator, sets $address
  local name=$1; shift
  local port_file="$out/port-$name"
  rm -f "$port_file"
  "$bin/pagedllm-coordinator" --model "$model" --device "$device" --port 0 \
    --port_file "$port_file" --mpirun_args "--bind-to none" --kv_usage_stats "${extra[@]}" "$@" \
    > "$out/serve-$name.log" 2>&1 &
  server=$!
  for _ in $(seq 1 600); do
    [ -f "$port_file" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.5
  done
  if [ ! -f "$port_file" ]; then
    echo "=== $name: the server did not start"; tail -20 "$out/serve-$name.log"; exit 1
  fi
  address="127.0.0.1:$(cat "$port_file")"
}
stop() { kill -TERM "$server" 2>/dev/null; wait "$server"; server=""; }
bench() {  # bench NAME FLAGS...: one pagedllm-bench run against $address, summarised
  local name=$1; shift
  "$bin/pagedllm-bench" --address "$address" "$@" > "$out/bench-$name.log" 2>&1
  {
    echo "=== $name: pagedllm-bench $*"
    grep -E "^(model|wall|KV cache|prefix cache|swaps|engine|time to first)" "$out/bench-$name.log"
  } | tee -a "$summary"
}

# 1. KV waste: every request at once, ShareGPT-like lengths.
if [[ " $sections " == *" waste "* ]]; then
serve waste --enable_prefix_caching=false
bench waste --workload sharegpt --num_requests "$sharegpt" --concurrency "$sharegpt" \
  --max_len "$max_len"
stop
fi

# 2. Sharing: n samples and beams against the same number of separate sequences.
if [[ " $sections " == *" sharing "* ]]; then
serve sharing --enable_prefix_caching=false
for k in 2 4 6; do
  bench "parallel-n$k" --workload alpaca --num_requests "$alpaca" --concurrency "$alpaca" \
    --temperature 1.0 --n "$k"
  bench "separate-x$k" --workload alpaca --num_requests "$alpaca" --concurrency $((alpaca * k)) \
    --temperature 1.0 --copies "$k"
  bench "beam-w$k" --workload alpaca --num_requests "$alpaca" --concurrency "$alpaca" \
    --use_beam_search --best_of "$k"
done
stop
fi

# 3. A shared system prompt: time to first token alone (one request at a time), and throughput.
[[ " $sections " == *" prefix "* ]] && for caching in false true; do
  serve "prefix-$caching" --enable_prefix_caching="$caching"
  bench "prefix-$caching-ttft" --workload fixed --shared_prefix_len "$prefix" --prompt_len 32 \
    --output_len 16 --num_requests 20 --concurrency 1 --max_len "$prefix_max_len"
  bench "prefix-$caching-throughput" --workload alpaca --shared_prefix_len "$prefix" \
    --num_requests "$alpaca" --concurrency "$alpaca" --max_len "$prefix_max_len"
  stop
done
echo "summary: $summary"
