#!/usr/bin/env bash
# Chaos against the docker-compose cluster: while `kvstore chaos --manager manager:7000`
# (run in a `client` container on the compose network) records a history of gets, puts
# and compare-and-sets and checks it for linearizability and lost writes, this script
# kills (SIGKILL), crash-restarts and pauses (SIGSTOP-like freeze) node containers on a
# schedule drawn from the seed. One node is faulty at a time, so with K=3 every shard
# keeps a majority; holds of up to 15 s pass --down-after (10 s), so re-replication runs
# under load too. At the end every container is healed and the checker's verdict is the
# exit code. See docs/operations.md.
#
# usage: scripts/compose-chaos.sh [DURATION_SECONDS (120)] [SEED (random)]
# env:   INTERVAL    seconds between faults (default 10)
#        COMPOSE     the compose command (default "docker compose"; e.g. "docker-compose")
#        OUT         host directory for the checker's --out files (default ./chaos-results)
#        CHAOS_ARGS  extra flags for `kvstore chaos` (e.g. "--clients 8 --keys 20")
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-120}
SEED=${2:-$(( (RANDOM << 15) | RANDOM ))}
INTERVAL=${INTERVAL:-10}
OUT=${OUT:-chaos-results}
read -r -a COMPOSE <<< "${COMPOSE:-docker compose}"
read -r -a EXTRA <<< "${CHAOS_ARGS:-}"
NODES=(n1 n2 n3 n4 n5)
RANDOM=$SEED # the fault schedule replays from the seed

if ! [[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 10 ]]; then
  echo "usage: $0 [DURATION_SECONDS >= 10] [SEED]" >&2
  exit 2
fi

log() { printf '%s compose-chaos: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Unpause before start: a paused container is running as far as `start` is concerned.
heal() {
  for node in "${NODES[@]}"; do
    "${COMPOSE[@]}" unpause "$node" >/dev/null 2>&1 || true
    "${COMPOSE[@]}" start "$node" >/dev/null 2>&1 || true
  done
}

checker_pid=''
healed=false
cleanup() {
  [[ $healed == true ]] || heal
  if [[ -n $checker_pid ]] && kill -0 "$checker_pid" 2>/dev/null; then kill "$checker_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sleeps `seconds`, returning early (status 1) when the checker has exited.
hold() {
  local until=$(( SECONDS + $1 ))
  while (( SECONDS < until )); do
    kill -0 "$checker_pid" 2>/dev/null || return 1
    sleep 1
  done
}

log "seed $SEED, duration ${DURATION}s, a fault every ${INTERVAL}s"
"${COMPOSE[@]}" up -d --wait manager "${NODES[@]}"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Nodes advertise their service names, so the checker runs on the compose network.
# --no-deps: the cluster is already up; --user: write --out files as the invoking user.
"${COMPOSE[@]}" --profile client run --rm --no-deps -T --user "$(id -u):$(id -g)" -v "$OUT:/chaos" client \
  chaos --manager manager:7000 --duration "$DURATION" --seed "$SEED" --out /chaos "${EXTRA[@]}" &
checker_pid=$!

faults=0
# Faults stop one interval before the checker's workload ends, so the cluster is whole
# again when it reads every key back and checks recovery.
stop_at=$(( SECONDS + DURATION - INTERVAL ))
while hold "$INTERVAL" && (( SECONDS < stop_at )); do
  node=${NODES[RANDOM % ${#NODES[@]}]}
  seconds=$(( 3 + RANDOM % 13 ))
  case $(( RANDOM % 3 )) in
    0)
      log "kill -9 $node, start it again in ${seconds}s"
      "${COMPOSE[@]}" kill -s SIGKILL "$node" >/dev/null
      hold "$seconds" || true
      "${COMPOSE[@]}" start "$node" >/dev/null
      ;;
    1)
      log "pause $node for ${seconds}s"
      "${COMPOSE[@]}" pause "$node" >/dev/null
      hold "$seconds" || true
      "${COMPOSE[@]}" unpause "$node" >/dev/null
      ;;
    2)
      log "crash-restart $node (kill -9, start at once)"
      "${COMPOSE[@]}" kill -s SIGKILL "$node" >/dev/null
      "${COMPOSE[@]}" start "$node" >/dev/null
      ;;
  esac
  faults=$(( faults + 1 ))
done

heal
healed=true
log "$faults faults injected; waiting for the checker's verdict"
status=0
wait "$checker_pid" || status=$?
checker_pid=''
if (( status == 0 )); then log "PASS (seed $SEED): history linearizable, no acknowledged write lost"
else log "FAIL (seed $SEED): checker exited $status; history and report in $OUT/"; fi
exit "$status"
