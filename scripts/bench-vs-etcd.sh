#!/usr/bin/env bash
# kvstore vs etcd, same workload, same machine, same run (issue: throughput target).
# Starts a 3-member etcd (apt: etcd-server) and a 3-node kvstore cluster (K=3) on loopback,
# drives each from one Node process with the same closed-loop load (the loop, keys and values of
# `kvstore bench`, src/bench), prints both results, and stops everything it started.
#
#   scripts/bench-vs-etcd.sh [--duration 15] [--concurrency 64] [--keys 10000] [--key-bytes 16] [--value-bytes 1024] [--mix 50] [--runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
duration=15 concurrency=64 keys=10000 key_bytes=16 value_bytes=1024 mix=50 runs=3 base_port=${BASE_PORT:-23000}
parse_flags duration concurrency keys key_bytes value_bytes mix runs -- "$@"
command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 3; }
[ -f dist/src/cli/main.js ] || npm run build >/dev/null

start_work

load() { node dist/test/bench/kv-vs-etcd.js --target "$1" --endpoints "$2" --duration "$duration" \
  --concurrency "$concurrency" --keys "$keys" --key-bytes "$key_bytes" --value-bytes "$value_bytes" --mix "$mix" --seed "$3"; }

# etcd: three members on loopback.
cluster=""
for i in 1 2 3; do cluster+="e$i=http://127.0.0.1:$((base_port + 10 + i)),"; done
cluster=${cluster%,}
etcd_endpoints=""
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$work/etcd$i" --listen-peer-urls "http://127.0.0.1:$((base_port + 10 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((base_port + 10 + i))" \
    --listen-client-urls "http://127.0.0.1:$((base_port + 20 + i))" --advertise-client-urls "http://127.0.0.1:$((base_port + 20 + i))" \
    --initial-cluster "$cluster" --initial-cluster-state new --log-level error >"$work/etcd$i.log" 2>&1 &
  pids+=($!)
  etcd_endpoints+="127.0.0.1:$((base_port + 20 + i)),"
done
etcd_endpoints=${etcd_endpoints%,}
ETCDCTL_API=3 timeout 30 bash -c "until etcdctl --endpoints=$etcd_endpoints endpoint health >/dev/null 2>&1; do sleep 0.2; done"

# kvstore: manager + 3 nodes, K=3.
node dist/src/cli/main.js cluster --nodes 3 --replicas 3 --port "$base_port" --data-dir "$work/kv" \
  >"$work/kv.out" 2>"$work/kv.log" &
pids+=($!)
timeout 60 bash -c "until grep -q '^ready manager=' '$work/kv.out'; do sleep 0.2; done"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version), etcd $(etcd --version | head -1 | awk '{print $3}')"
echo "workload: ${concurrency} in flight from one Node process, ${mix}% gets, ${keys} keys of ${key_bytes} bytes, ${value_bytes}-byte values, ${duration} s per run"
for run in $(seq 1 "$runs"); do
  load etcd "$etcd_endpoints" "$run" | tee -a "$work/results.jsonl"
  load kvstore "127.0.0.1:$base_port" "$run" | tee -a "$work/results.jsonl"
done
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const row = {};
for (const target of ["etcd", "kvstore"]) {
  const rs = lines.filter((r) => r.target === target);
  row[target] = { opsPerSec: median(rs.map((r) => r.opsPerSec)), getP50: median(rs.map((r) => r.get.p50)), getP99: median(rs.map((r) => r.get.p99)),
    putP50: median(rs.map((r) => r.put.p50)), putP99: median(rs.map((r) => r.put.p99)), errors: rs.reduce((a, r) => a + r.errors, 0) };
}
console.log(`median of ${lines.length / 2} runs:`);
for (const [t, r] of Object.entries(row)) console.log(`  ${t.padEnd(8)} ${String(r.opsPerSec).padStart(7)} ops/s   get p50 ${r.getP50} p99 ${r.getP99} ms   put p50 ${r.putP50} p99 ${r.putP99} ms   errors ${r.errors}`);
console.log(`  kvstore / etcd throughput: ${(row.kvstore.opsPerSec / row.etcd.opsPerSec).toFixed(2)}x`);
' "$work/results.jsonl"
