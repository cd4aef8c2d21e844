#!/usr/bin/env bash
# The Docker engine dies under a running service and comes back.
#
# A private dockerd of this test's own (not the shared one), a single-node
# swarmc daemon pointed at it, a 3-replica service running `sleep 3600`
# with --init. Then kill -9 dockerd (and the containerd it started), wait
# until swarmc notices (its /events stream breaks), start dockerd again on
# the same directory, and check that:
#   - the worker reconnects its events stream;
#   - the service converges back to 3/3 running;
#   - no slot ever ends with two running containers;
#   - `service ps` shows the old tasks as failed, with a message that names
#     the cause (the engine was unreachable while the container stopped).
#
# Decision (also in docs/design.md §11, "A Docker engine restart"): the worker
# never guesses. Once its events stream is back it lists its containers and
# compares them with its tasks: a container that is still running is adopted
# (that is what happens with dockerd's live-restore), one that exited while
# the stream was down fails its task with the exit code and a message naming
# the engine outage, and the orchestrator replaces it as for any failure.
# Here the containers die (a restart of this private dockerd cleans the
# killed instance's shims and container processes), so the tasks fail and
# are replaced.
set -euo pipefail
SRC=${SWARMC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DOCKERD=$SRC/scripts/dockerd.sh

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to run a private dockerd" >&2
  exit 77
fi
DDIR=$(mktemp -d /tmp/swd-rs.XXXXXX)
"$DOCKERD" start "$DDIR" >/dev/null 2>"$DDIR.start.log" || {
  cat "$DDIR.start.log" >&2
  echo "SKIP: could not start a private dockerd" >&2
  rm -rf "$DDIR" "$DDIR.start.log"
  exit 77
}
DOCKERD_SOCK=$DDIR/docker.sock "$DOCKERD" image "$DDIR" >/dev/null 2>>"$DDIR.start.log" ||
  { cat "$DDIR.start.log" >&2; "$DOCKERD" purge "$DDIR" >/dev/null 2>&1; exit 1; }
export DOCKER_HOST=unix://$DDIR/docker.sock

source "$(dirname "$0")/lib.sh"

# Our own exit path: stop the daemons, then the whole private engine (its
# containers go with it), then the temporary state.
finish() {
  local rc=$?
  set +e
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
  "$DOCKERD" purge "$DDIR" >/dev/null 2>&1
  rm -rf "$TMP" "$DDIR.start.log"
  exit $rc
}
trap finish EXIT

start_daemon n1
export SWARMC_HOST=$n1_SOCK
LOG=$TMP/n1/daemon.log
sw init --advertise-addr "127.0.0.1:$n1_PORT" >/dev/null || fail "init"
NODE=$(grep -o '"node_id": *"[a-z0-9]*"' "$TMP/n1/cluster.json" | cut -d'"' -f4)
sel=("swarmc.service.name=web" "swarmc.node.id=$NODE")
running() { [ "$(count_containers "${sel[@]}")" = "$1" ]; }
replicas() { sw service ls | grep -E "^[a-z0-9]+ +web " | grep -q " $1/$1 "; }
log_has() { grep -q "$1" "$LOG"; }
log_count() { grep -c "$1" "$LOG" || true; }

# Running containers per slot label: prints "slot count" lines.
per_slot() {
  local id
  for id in $(containers "${sel[@]}"); do
    docker_api "http://localhost/v1.41/containers/$id/json" |
      grep -o '"swarmc.task.slot":"[0-9]*"' | cut -d'"' -f4
  done | sort | uniq -c
}
no_duplicates() { ! per_slot | awk '$1 > 1 {f = 1} END {exit !f}'; }

log "create 3 replicas"
sw service create --detach --name web --replicas 3 --init --stop-grace-period 2s "$IMAGE" sleep 3600 >/dev/null ||
  fail "service create"
wait_until 90 "3 containers running" running 3
wait_until 30 "service ls says 3/3" replicas 3
OLD=$(containers "${sel[@]}" | sort)

ended0=$(log_count "events stream ended")
back0=$(log_count "events stream reconnected")

log "kill -9 dockerd (and its containerd)"
DPID=$(tr -dc 0-9 <"$DDIR/dockerd.pid")
CPID=$(tr -dc 0-9 <"$DDIR/exec/containerd/containerd.pid" 2>/dev/null || true)
[ -n "$DPID" ] || fail "no dockerd pid in $DDIR/dockerd.pid"
kill -KILL "$DPID"
[ -z "$CPID" ] || kill -KILL "$CPID" 2>/dev/null || true
events_broke() { [ "$(log_count "events stream ended")" -gt "$ended0" ]; }
wait_until 30 "swarmc notices the events stream broke" events_broke

# While the engine is down, requests fail cleanly (the daemon stays up and
# answers its control socket).
sw service ls >/dev/null || fail "control socket does not answer while dockerd is down"
kill -0 "$n1_PID" 2>/dev/null || fail "swarmc daemon died with dockerd"

log "start dockerd again on the same directory"
"$DOCKERD" start "$DDIR" >/dev/null 2>>"$DDIR.start.log" || fail "dockerd restart"
events_back() { [ "$(log_count "events stream reconnected")" -gt "$back0" ]; }
wait_until 60 "the worker reconnects its events stream" events_back

log "converge back to 3/3"
wait_until 120 "3 containers running again" running 3
wait_until 60 "service ls says 3/3 again" replicas 3
NEW=$(containers "${sel[@]}" | sort)
[ "$OLD" != "$NEW" ] || fail "the same containers run: the engine restart did not stop them?"
no_duplicates || fail "a slot has more than one running container: $(per_slot | tr '\n' ' ')"
n=0
for id in $NEW; do n=$((n + 1)); done
[ "$n" = 3 ] || fail "expected 3 running containers, found $n"

log "service ps shows the failed tasks and why"
ps_out=$(sw service ps --no-trunc web) || fail "service ps"
failed=$(printf '%s\n' "$ps_out" | grep -c "Failed" || true)
[ "$failed" -ge 3 ] || fail "expected 3 failed tasks in service ps, got $failed:
$ps_out"
named=$(printf '%s\n' "$ps_out" | grep "Failed" | grep -ci "docker engine" || true)
[ "$named" -ge 3 ] || fail "failed tasks do not name the engine outage:
$ps_out"

# Still no duplicate a little later (a late event must not start a second copy).
no_duplicates || fail "a slot has more than one running container: $(per_slot | tr '\n' ' ')"
log "ok"
