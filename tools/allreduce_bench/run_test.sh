#!/usr/bin/env bash
# ctest driver: run_test.sh MPIRUN NP BENCH. Runs pagedllm-allreduce-bench on the CPU backend
# under mpirun and checks the exit status and every printed line; then checks that a dtype the
# CPU backend cannot reduce ends the job with a non-zero status and a message naming it.
set -uo pipefail
mpirun="$1" np="$2" bench="$3"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
launch=("$mpirun" --oversubscribe --bind-to none -np "$np")
fail() { echo "FAIL: $*"; echo "--- output:"; cat "$log"; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

"${launch[@]}" "$bench" --device cpu --dtype float32 --sizes 1,1000,4K,65536,1000003 \
  --iters 5 --warmup 2 > "$log" 2>&1 || fail "exit status $? (want 0)"
lines=$(grep -c '^allreduce ' "$log")
[ "$lines" -eq 5 ] || fail "$lines result lines (want 5: one per size)"
want_sizes="1 1000 4096 65536 1000003"
got_sizes=$(awk '/^allreduce /{printf "%s%s", sep, $7; sep=" "}' "$log")
[ "$got_sizes" = "$want_sizes" ] || fail "sizes \"$got_sizes\" (want \"$want_sizes\")"
# Fields: allreduce ranks N dtype D elements E bytes B mean_us M min_us m loop_us L algbw_GBps A
# busbw_GBps U. Checks ranks, bytes = 4 E, positive times, min <= mean, A = B / L, U = A 2(n-1)/n.
awk -v np="$np" '
  /^allreduce / {
    ok = $2 == "ranks" && $3 == np && $4 == "dtype" && $5 == "float32" && $6 == "elements" &&
         $8 == "bytes" && $9 == 4 * $7 && $10 == "mean_us" && $12 == "min_us" &&
         $14 == "loop_us" && $16 == "algbw_GBps" && $18 == "busbw_GBps" &&
         $11 > 0 && $13 > 0 && $15 > 0 && $13 <= $11 + 0.01
    algbw = $9 / ($15 * 1e3); busbw = algbw * 2 * (np - 1) / np
    ok = ok && ($17 - algbw) ^ 2 <= (1e-3 + 2e-2 * algbw) ^ 2 &&
         ($19 - busbw) ^ 2 <= (1e-3 + 2e-2 * busbw) ^ 2
    if (!ok) { print "bad line: " $0; bad = 1 }
  }
  END { exit bad }' "$log" || fail "malformed result line"

"${launch[@]}" "$bench" --device cpu --dtype bfloat16 --sizes 16 > "$log" 2>&1 &&
  fail "--dtype bfloat16 on the CPU exited 0 (want a failure)"
grep -q "all-reduces float32 only" "$log" || fail "no message about the CPU's float32-only sum"

"${launch[@]}" "$bench" --device cpu --dtype float32 --sizes 16,x > "$log" 2>&1 &&
  fail "--sizes 16,x exited 0 (want a failure)"
grep -q '"x" is not a positive element count' "$log" || fail "no message naming the bad size"
echo "PASS: $np ranks"
