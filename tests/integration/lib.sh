# Shared helpers for the integration tests (sourced). They drive real
# `swarmc daemon` processes on 127.0.0.1 with temporary state and a real
# Docker engine (DOCKER_HOST, set by scripts/test). Waits are conditions
# with deadlines, never fixed sleeps. IT_KEEP=DIR copies the test's state
# dirs and daemon logs to DIR when it ends (to look at a failure).
set -euo pipefail

SWARMC=${SWARMC:?SWARMC must point at the swarmc binary (ctest sets it)}
IMAGE=${SWARMC_TEST_IMAGE:-localbusybox:latest}
DOCKER_SOCK=${DOCKER_HOST:-}
DOCKER_SOCK=${DOCKER_SOCK#unix://}

TMP=$(mktemp -d /tmp/swarmc-it.XXXXXX)
PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
fail() {
  log "FAIL: $*"
  for f in "$TMP"/*/daemon.log; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -n 40 "$f"; }; done >&2
  exit 1
}

need_docker() {
  if [ -z "$DOCKER_SOCK" ] || [ "$(curl -s --max-time 3 --unix-socket "$DOCKER_SOCK" http://localhost/_ping)" != OK ]; then
    if [ -n "${CI:-}" ]; then fail "no Docker engine at DOCKER_HOST=${DOCKER_HOST:-}"; fi
    log "SKIP: no Docker engine (run through scripts/test)"
    exit 77
  fi
}

docker_api() { curl -s --max-time 30 --unix-socket "$DOCKER_SOCK" "$@"; }

# label_json L1 L2...: a JSON list of label filters (all must match).
label_json() { local IFS=,; local q=(); for l in "$@"; do q+=("\"$l\""); done; echo "[${q[*]}]"; }

# Containers (running) whose labels match every label filter, one id a line.
containers() {
  local filter
  filter=$(printf '{"label":%s,"status":["running"]}' "$(label_json "$@")")
  docker_api -G "http://localhost/v1.41/containers/json" --data-urlencode "filters=$filter" |
    grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 || true
}

all_containers() {
  local filter
  filter=$(printf '{"label":%s}' "$(label_json "$@")")
  docker_api -G "http://localhost/v1.41/containers/json?all=1" --data-urlencode "filters=$filter" |
    grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4 || true
}

count_containers() { containers "$@" | grep -c . || true; }

# wait_until SECONDS DESCRIPTION COMMAND...: run COMMAND until it succeeds.
wait_until() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${secs}s waiting for: $what"
    sleep 0.2
  done
}

# A free port P whose P+1 is free too (raft listens on the cluster port + 1),
# clear of the pairs this test has already handed out (they are bound only
# at init, so a plain bind check cannot see them).
PORTS_TAKEN=""
free_port() {
  SWARMC_PORTS_TAKEN="$PORTS_TAKEN" python3 "$(dirname "${BASH_SOURCE[0]}")/../../scripts/free-port"
}

# start_daemon NAME [extra daemon args]: starts a daemon with its own state
# dir and control socket; sets NAME_SOCK and NAME_PORT.
start_daemon() {
  local name=$1; shift
  local dir=$TMP/$name port
  mkdir -p "$dir"
  port=$(free_port)
  PORTS_TAKEN="$PORTS_TAKEN $port"
  "$SWARMC" daemon --state-dir "$dir" --socket "$dir/ctl.sock" --listen "127.0.0.1:$port" \
    --advertise-addr "127.0.0.1:$port" --docker "unix://$DOCKER_SOCK" "$@" >"$dir/daemon.log" 2>&1 &
  PIDS+=($!)
  eval "${name}_PID=$!"
  eval "${name}_SOCK=$dir/ctl.sock"
  eval "${name}_PORT=$port"
  wait_until 10 "$name control socket" test -S "$dir/ctl.sock"
}

# restart_daemon NAME [extra daemon args]: start NAME again on its state
# dir, socket and port (after a kill), updating NAME_PID.
restart_daemon() {
  local name=$1; shift
  local dir=$TMP/$name port
  eval "port=\${${name}_PORT}"
  rm -f "$dir/ctl.sock"
  "$SWARMC" daemon --state-dir "$dir" --socket "$dir/ctl.sock" --listen "127.0.0.1:$port" \
    --advertise-addr "127.0.0.1:$port" --docker "unix://$DOCKER_SOCK" "$@" >>"$dir/daemon.log" 2>&1 &
  PIDS+=($!)
  eval "${name}_PID=$!"
  wait_until 10 "$name control socket" test -S "$dir/ctl.sock"
}

sw() { "$SWARMC" -H "$SWARMC_HOST" "$@"; }

cleanup() {
  local rc=$?
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  # remove the containers this test's nodes made (told apart by node id)
  local nid id
  for nid in $(cat "$TMP"/*/cluster.json 2>/dev/null | grep -o '"node_id": *"[a-z0-9]*"' | cut -d'"' -f4); do
    for id in $(all_containers "swarmc.node.id=$nid"); do
      docker_api -X DELETE "http://localhost/v1.41/containers/$id?force=1" >/dev/null || true
    done
  done
  [ -z "${IT_KEEP:-}" ] || cp -r "$TMP" "$IT_KEEP"; rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
