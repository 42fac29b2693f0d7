# Sourced by the H100 benchmark scripts: unpacks the bundle, sets the environment, and gives
#   serve MODEL LOG FLAGS...  a coordinator on benchmarks/models/MODEL (random weights, tp 1,
#                             CUDA; HTTP on $http_port when the script set it, else none), its
#                             log appended to LOG; sets $port, $http and $server
#   stop LOG                  stops it, appending its exit status to LOG
# and $bin (the bundle's programs) and $floor_flags (the H100's measured copy bandwidth and GEMM
# peak for pagedllm-bench's floor; FLOOR_FLAGS overrides). Needs $bundle and $out.
mkdir -p "$out" /tmp/pagedllm-gpu
tar -xJf "$bundle" -C /tmp/pagedllm-gpu
bin=/tmp/pagedllm-gpu/pagedllm/bin
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
floor_flags=${FLOOR_FLAGS:---memory_gbps 3015 --peak_tflops 783}
serve() {
  local model=$1 log=$2; shift 2
  rm -f /tmp/bench-port /tmp/bench-http
  "$bin/pagedllm-coordinator" --model "benchmarks/models/$model" --load_format dummy --tp 1 \
    --device cuda --port 0 --port_file /tmp/bench-port --http_port "${http_port:-0}" \
    --http_port_file /tmp/bench-http --max_waiting 4000 "$@" >> "$log" 2>&1 &
  server=$!
  for _ in $(seq 900); do [ -f /tmp/bench-port ] && break; sleep 0.2; done
  port=$(cat /tmp/bench-port 2>/dev/null || echo 0)
  http=$(cat /tmp/bench-http 2>/dev/null || echo 0)
}
stop() { kill -TERM "$server"; wait "$server"; echo "coordinator exit status $?" >> "$1"; }
