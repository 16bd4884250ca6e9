#!/usr/bin/env bash
# How a node holds up under a long load (docs/benchmarks.md, "Steady state"): starts a 3-node
# K=3 cluster on loopback, drives it from one Node process with the closed loop `kvstore bench`
# workers run (test/bench/kv-vs-etcd.ts), and every 10 s reads node n1's /metrics: the requests
# it served per second, its CPU, V8 heap, external (Buffer) memory and the longest event-loop
# stall of the window. At the end: the load's result and each process's peak RSS. Stops
# everything it started.
#
#   npm run build && scripts/steady-state.sh [--duration 90] [--concurrency 64] [--value-bytes 1024] [--keys 10000] [--mix 50]
#   BASE_PORT=24000 TMPDIR=/dev/shm scripts/steady-state.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
duration=90 concurrency=64 value_bytes=1024 keys=10000 mix=50 port=${BASE_PORT:-24000}
parse_flags duration concurrency value_bytes keys mix -- "$@"
[ -f dist/src/cli/main.js ] || npm run build >/dev/null

start_work

node dist/src/cli/main.js cluster --nodes 3 --replicas 3 --port "$port" --data-dir "$work/kv" >"$work/kv.out" 2>"$work/kv.log" &
cluster=$!
pids+=("$cluster")
timeout 60 bash -c "until grep -q '^ready manager=' '$work/kv.out'; do sleep 0.2; done"
metrics="http://127.0.0.1:$((port + 1001))/metrics" # node n1: port+1, metrics at +1000

node dist/test/bench/kv-vs-etcd.js --target kvstore --endpoints "127.0.0.1:$port" --duration "$duration" \
  --concurrency "$concurrency" --keys "$keys" --key-bytes 16 --value-bytes "$value_bytes" --mix "$mix" --seed 1 >"$work/result" &
load=$!
pids+=("$load")

sample() {
  curl -s "$metrics" | awk '
    /^kvstore_node_request_duration_seconds_count/ { requests += $2 }
    /^process_cpu_seconds_total/ { cpu = $2 }
    /^nodejs_heap_size_used_bytes/ { heap = $2 }
    /^nodejs_external_memory_bytes/ { external = $2 }
    /^nodejs_eventloop_lag_max_seconds/ { lag = $2 }
    END { printf "%d %.3f %d %d %.3f\n", requests, cpu, heap, external, lag }'
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
echo "workload: ${concurrency} in flight from one Node process, ${mix}% gets, ${keys} keys, ${value_bytes}-byte values, ${duration} s"
printf '%6s %12s %8s %10s %12s %16s\n' window n1_requests/s n1_cpu n1_heap_MB n1_external_MB longest_stall_ms
read -r prev_requests prev_cpu _ <<<"$(sample)"
for ((t = 10; t <= duration; t += 10)); do
  sleep 10
  read -r requests cpu heap external lag <<<"$(sample)"
  awk -v t="$t" -v r="$((requests - prev_requests))" -v c="$cpu" -v pc="$prev_cpu" -v h="$heap" -v e="$external" -v l="$lag" \
    'BEGIN { printf "%5ds %12d %7.0f%% %10.0f %12.0f %16.0f\n", t, r / 10, (c - pc) * 10, h / 1e6, e / 1e6, l * 1000 }'
  prev_requests=$requests prev_cpu=$cpu
done
wait "$load"
cat "$work/result"
echo "peak RSS of each process the cluster started (manager and nodes): $(for p in $(pgrep -P "$cluster"); do awk '/VmHWM/ { printf "%d MiB ", $2 / 1024 }' "/proc/$p/status"; done)"
