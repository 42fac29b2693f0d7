#!/usr/bin/env bash
# Where one decode step's GPU time goes: runs a dummy-weight model at batch 1 with the worker
# under Nsight Compute (each kernel timed alone, clocks left alone), then sums the kernel times of
# one whole step (from one embedding kernel to the next) by kernel name. The sum against the
# step's wall time shows how much of the step the GPU is busy; per kernel against its bytes shows
# which are off their floor.
#   tests/gpu/profile_decode.sh BIN_DIR MODEL_DIR OUT_DIR [SKIP] [COUNT]
# BATCH (default 1) requests of 128 prompt tokens decode together (OUTPUT_LEN tokens, default 48).
set -uo pipefail
bin="${1:?usage: profile_decode.sh BIN_DIR MODEL_DIR OUT_DIR [SKIP] [COUNT]}"
model="${2:?}"
out="${3:?}"
skip="${4:-4000}"
count="${5:-1500}"
mkdir -p "$out"
wrapper="$out/ncu-worker.sh"
cat > "$wrapper" <<WRAP
#!/usr/bin/env bash
exec ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip $skip \
  --launch-count $count --csv --log-file "$out/ncu.csv" "$bin/pagedllm-worker" "\$@"
WRAP
chmod +x "$wrapper"
port_file="$out/port"
rm -f "$port_file"
"$bin/pagedllm-coordinator" --model "$model" --load_format dummy --device cuda --port 0 \
  --port_file "$port_file" --http_port 0 --worker_bin "$wrapper" --step_timeout_s 600 --gpu_memory_utilization 0.5 \
  --worker_start_timeout_s 600 > "$out/coordinator.log" 2>&1 &
server=$!
for _ in $(seq 1500); do [ -f "$port_file" ] && break; sleep 0.2; done
if [ ! -f "$port_file" ]; then echo "server did not start"; tail -30 "$out/coordinator.log"; kill $server; exit 1; fi
"$bin/pagedllm-bench" --address "127.0.0.1:$(cat "$port_file")" --num_requests "${BATCH:-1}" \
  --concurrency "${BATCH:-1}" --prompt_len 128 --output_len "${OUTPUT_LEN:-48}" > "$out/bench.log" 2>&1
kill -TERM $server; wait $server
python3 - "$out/ncu.csv" <<'PY'
import csv, re, sys, collections
rows = []
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    value = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "nsecond")
    scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(unit, 1e-3)
    name = re.sub(r"\(.*", "", r["Kernel Name"]).strip()
    rows.append((int(r["ID"]), name, value * scale, r.get("Grid Size", ""), r.get("Block Size", "")))
rows.sort()
starts = [i for i, row in enumerate(rows) if "Embedding" in row[1]]
if len(starts) < 3:
    print("fewer than 2 whole steps profiled:", len(rows), "kernels"); sys.exit(0)
step = rows[starts[-2]:starts[-1]]
total = sum(r[2] for r in step)
print(f"one decode step: {len(step)} kernels, {total:.1f} us of kernel time")
by_name = collections.OrderedDict()
for _, name, us, grid, block in step:
    key = (name, grid)
    n, t = by_name.get(key, (0, 0.0))
    by_name[key] = (n + 1, t + us)
print(f"{'kernel':60s} {'grid':>16s} {'count':>5s} {'total us':>9s} {'mean us':>8s}")
for (name, grid), (n, t) in sorted(by_name.items(), key=lambda kv: -kv[1][1]):
    print(f"{name[:60]:60s} {grid:>16s} {n:5d} {t:9.1f} {t / n:8.2f}")
PY
tail -3 "$out/bench.log"
