# shellcheck shell=bash
# Shared pieces of the benchmark scripts (scripts/bench-vs-etcd.sh, scripts/steady-state.sh).
# Sourced, after `cd` to the repository's root: `. scripts/lib.sh`; it does nothing on its own.

# parse_flags NAME... -- "$@": reads `--flag value` pairs. Each NAME is a variable the script
# declared (and gave its default); its flag is the name with underscores as dashes (key_bytes:
# --key-bytes), and the value sets it. Any other argument: "unknown flag X", exit 2.
parse_flags() {
  local -a _flags=()
  local _name _known
  while [ "$1" != -- ]; do _flags+=("$1"); shift; done
  shift
  while [ $# -gt 0 ]; do
    _known=""
    for _name in "${_flags[@]}"; do
      if [ "$1" = "--${_name//_/-}" ]; then _known=$_name; break; fi
    done
    [ -n "$_known" ] || { echo "unknown flag $1" >&2; exit 2; }
    printf -v "$_known" '%s' "$2"
    shift 2
  done
}

# start_work: makes the work dir ($work) and the list of the PIDs the script starts ($pids: add
# each with `pids+=($!)`), and traps the exit to stop those processes, by PID, wait for them and
# remove the work dir.
start_work() {
  work=$(mktemp -d)
  pids=()
  trap cleanup EXIT INT TERM
}

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
