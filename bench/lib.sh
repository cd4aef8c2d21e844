# shellcheck shell=bash
# Shared helpers for bench/run and its parts (sourced, bash). Every figure
# is written as one JSON line to $REC (records.jsonl) by `rec`; bench/lib/
# report.py turns those lines into bench/results/<date>.json and .md. Waits
# poll a condition until a deadline; nothing here asserts: a step that times
# out records what it saw and says so in its note.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build-bench}
SWARMC=${SWARMC:-$BUILD/swarmc}
DDIR=${DDIR:-/tmp/swd-bench}
DSOCK=$DDIR/docker.sock
IMAGE=${IMAGE:-localbusybox:latest}
REC=${REC:-/tmp/swc-bench.records.jsonl}
RAW=${RAW:-/tmp/swc-bench.raw.log}

blog() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

now() { date +%s.%N; }
# elapsed START: seconds since START (a `now` value), 3 decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# rec GROUP NAME UNIT NOTE VALUE...: one figure (median/min/max are computed
# by the report from the values; a value "-" means that run produced none).
rec() {
  local group=$1 name=$2 unit=$3 note=$4; shift 4
  local vals=() v
  for v in "$@"; do [ "$v" = "-" ] || [ -z "$v" ] || vals+=("$v"); done
  local IFS=,
  printf '{"group":"%s","name":"%s","unit":"%s","note":"%s","values":[%s]}\n' \
    "$group" "$name" "$unit" "$note" "${vals[*]}" >>"$REC"
}

# rec_side GROUP NAME UNIT SIDE NOTE VALUE...: like rec, for a figure measured
# on both swarmc and swarm mode (SIDE swarmc | swarm-mode | raw-api); the
# report prints them side by side with the swarmc / swarm-mode ratio.
rec_side() {
  local group=$1 name=$2 unit=$3 side=$4 note=$5; shift 5
  local vals=() v
  for v in "$@"; do [ "$v" = "-" ] || [ -z "$v" ] || vals+=("$v"); done
  local IFS=,
  printf '{"group":"%s","name":"%s","unit":"%s","side":"%s","note":"%s","values":[%s]}\n' \
    "$group" "$name" "$unit" "$side" "$note" "${vals[*]}" >>"$REC"
}

# step_rec NAME T0: record how long a step of the suite took (since the
# `now` value T0), so a results file shows where bench/run's time goes.
step_rec() {
  rec "bench/run steps (wall time)" "$1" s "" "$(elapsed "$2")"
}

# rss_kib PID: resident set size of PID in KiB (0 if gone).
rss_kib() { awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# cpu_ticks PID: utime + stime of PID in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# wait_for SECS COMMAND...: run COMMAND every 0.1 s until it succeeds; 0 if it
# did, 1 on timeout.
wait_for() {
  local secs=$1; shift
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# A free port P whose P+1 is free too (raft listens on the cluster port + 1).
# Clear of the pairs handed out earlier in this run (bound only at init):
# callers add the port they keep to PORTS_TAKEN ($(...) runs in a subshell).
PORTS_TAKEN=""
free_port() { SWARMC_PORTS_TAKEN="$PORTS_TAKEN" python3 "$ROOT/scripts/free-port"; }

# --- swarmc daemons ---------------------------------------------------------

SWC_PIDS=()

# swc_start DIR [daemon args...]: start a daemon with state in DIR (wiped),
# init a one-manager cluster; sets SWC_PID, SWC_SOCK, SWC_PORT.
swc_start() {
  local dir=$1; shift
  rm -rf "$dir" && mkdir -p "$dir"
  SWC_PORT=$(free_port)
  PORTS_TAKEN="$PORTS_TAKEN $SWC_PORT"
  SWC_SOCK=$dir/ctl.sock
  "$SWARMC" daemon --state-dir "$dir" --socket "$SWC_SOCK" --listen "127.0.0.1:$SWC_PORT" \
    --advertise-addr "127.0.0.1:$SWC_PORT" --docker "unix://$DSOCK" "$@" >"$dir/daemon.log" 2>&1 &
  SWC_PID=$!
  SWC_PIDS+=("$SWC_PID")
  wait_for 20 test -S "$SWC_SOCK" || { blog "swarmc daemon did not start (see $dir/daemon.log)"; return 1; }
  "$SWARMC" -H "$SWC_SOCK" init --advertise-addr "127.0.0.1:$SWC_PORT" >/dev/null
  wait_for 30 swc_node_ready || { blog "swarmc node not ready"; return 1; }
}

swc() { "$SWARMC" -H "$SWC_SOCK" "$@"; }
swc_node_ready() { swc node ls 2>/dev/null | grep -q Ready; }

# swc_stop: stop the daemon started last (SIGTERM, then SIGKILL after 20 s).
swc_stop() {
  [ -n "${SWC_PID:-}" ] || return 0
  kill -TERM "$SWC_PID" 2>/dev/null || true
  local i
  for i in $(seq 200); do kill -0 "$SWC_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SWC_PID" 2>/dev/null || true
  wait "$SWC_PID" 2>/dev/null || true
  SWC_PID=
}

# --- the private dockerd ------------------------------------------------------

dapi() { curl -s --max-time 60 --unix-socket "$DSOCK" "$@"; }
dk() { docker -H "unix://$DSOCK" "$@"; }
dockerd_pid() { cat "$DDIR/dockerd.pid" 2>/dev/null; }

# Container ids (all states) whose labels match filter $1 (e.g. key=value).
containers_with_label() {
  dapi -G "http://localhost/v1.41/containers/json?all=1" \
    --data-urlencode "filters={\"label\":[\"$1\"]}" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 || true
}

# Remove every container carrying label $1 (force), in parallel batches.
remove_labelled() {
  containers_with_label "$1" | xargs -r -P 4 -I{} curl -s --max-time 60 --unix-socket "$DSOCK" \
    -X DELETE "http://localhost/v1.41/containers/{}?force=1" >/dev/null
}

running_with_label() {
  dapi -G "http://localhost/v1.41/containers/json" \
    --data-urlencode "filters={\"label\":[\"$1\"],\"status\":[\"running\"]}" | grep -o '"Id":"' | wc -l
}

# --- statistics for in-script decisions ---------------------------------------

# median VALUE...: the median (middle of the sorted values).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# --- time budget (bench/run exports DEADLINE, epoch seconds) ------------------------------

# left: seconds left before the suite's deadline.
left() { echo $((${DEADLINE:-9999999999} - $(date +%s))); }

# budget_ok SECS GROUP WHAT: true if SECS fit in what is left; otherwise
# records WHAT as skipped for lack of time and returns 1.
budget_ok() {
  [ "$(left)" -ge "$1" ] && return 0
  blog "time budget: skipping $3 (needs ~$1 s, $(left) s left)"
  printf '{"group":"%s","text":"skipped for the time budget: %s"}\n' "$2" "$3" >>"$REC"
  return 1
}

# On exit (also on TERM/INT), stop the daemons this script started.
lib_exit() {
  local p
  for p in "${SWC_PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  return 0
}
trap lib_exit EXIT
trap 'exit 143' TERM INT
