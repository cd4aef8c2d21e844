#!/usr/bin/env bash
# `swarmc service logs` through the manager: a manager and a worker on one
# Docker engine; a service whose containers print numbered lines has tasks
# on both nodes; the manager fans out to "worker.Logs" on each node over the
# secure channel and the CLI shows every line prefixed with its task name.
# Also: --tail, follow mode (a line printed later shows up while the stream
# is open), and an unknown service.
source "$(dirname "$0")/lib.sh"
need_docker
export SWARMC_HEARTBEAT_PERIOD=500ms

start_daemon m1
start_daemon w1
SWARMC_HOST=$m1_SOCK sw init --advertise-addr "127.0.0.1:$m1_PORT" >/dev/null || fail "init"
export SWARMC_HOST=$m1_SOCK
TOKEN=$(sw join-token -q worker) || fail "join-token"
"$SWARMC" -H "$w1_SOCK" join --token "$TOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "w1 join"
ready2() { [ "$(sw node ls | grep -c ' Ready ')" = 2 ]; }
wait_until 20 "2 nodes ready" ready2

log "a service printing lines, one task per node"
sw service create --detach --name talk --replicas 2 --init --stop-grace-period 1s "$IMAGE" \
  sh -c 'for i in 1 2 3; do echo "line $i from $HOSTNAME"; done; sleep 4; echo late-line; sleep 3600' \
  >/dev/null || fail "create"
running2() { [ "$(count_containers "swarmc.service.name=talk")" = 2 ]; }
wait_until 60 "2 containers running" running2
both_lines() { [ "$(sw service logs talk 2>/dev/null | grep -c 'line 3')" = 2 ]; }
wait_until 20 "line 3 of both tasks in the logs" both_lines

out=$(sw service logs talk 2>&1) || fail "service logs: $out"
[ "$(echo "$out" | grep -c '| line ')" = 6 ] || fail "expected 6 lines, got: $out"
echo "$out" | grep -Eq '^talk\.1\.[a-z0-9]+@[^ ]+ +\| line 1' || fail "no task name prefix for slot 1: $out"
echo "$out" | grep -Eq '^talk\.2\.[a-z0-9]+@[^ ]+ +\| line 1' || fail "no task name prefix for slot 2: $out"
M1NAME=$(sw node ls | grep '\*' | awk '{print $3}')
[ "$(echo "$out" | awk '{print $1}' | cut -d@ -f2 | sort -u | wc -l)" = 1 ] && log "note: both nodes share a hostname ($M1NAME)"

log "--tail 1 gives the last line of each task"
wait_until 20 "late line printed" sh -c "\"$SWARMC\" -H \"$SWARMC_HOST\" service logs talk | grep -c late-line | grep -qx 2"
out=$(sw service logs --tail 1 talk 2>&1) || fail "logs --tail: $out"
[ "$(echo "$out" | grep -c .)" = 2 ] || fail "--tail 1: expected 2 lines: $out"
[ "$(echo "$out" | grep -c late-line)" = 2 ] || fail "--tail 1: not the last lines: $out"

log "follow: lines printed after the stream opened arrive"
sw service create --detach --name tick --replicas 1 --init --stop-grace-period 1s "$IMAGE" \
  sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done' >/dev/null || fail "create tick"
tick_running() { [ "$(count_containers "swarmc.service.name=tick")" = 1 ]; }
wait_until 60 "tick running" tick_running
"$SWARMC" -H "$SWARMC_HOST" service logs -f tick >"$TMP/follow.out" 2>&1 &
FPID=$!
followed() { [ "$(grep -c 'tick' "$TMP/follow.out")" -ge 5 ]; }
wait_until 20 "5 ticks through the open stream" followed
kill -0 "$FPID" 2>/dev/null || fail "follow stream ended by itself"
first=$(grep -c tick "$TMP/follow.out")
wait_until 10 "more ticks later" sh -c "[ \$(grep -c tick '$TMP/follow.out') -gt $first ]"
kill -INT "$FPID"; wait "$FPID" 2>/dev/null || true
# no duplicated lines in follow mode
dups=$(grep -o 'tick [0-9]*' "$TMP/follow.out" | sort | uniq -d | wc -l)
[ "$dups" = 0 ] || fail "follow repeated lines: $(cat "$TMP/follow.out")"

log "an unknown service is an error"
if out=$(sw service logs nosuch 2>&1); then fail "logs of an unknown service succeeded"; fi
echo "$out" | grep -q "nosuch not found" || fail "unexpected error: $out"
log "ok"
