#!/usr/bin/env bash
# Role changes take effect live, certificates renew, removed nodes are
# refused. One manager and two workers (sim executor) renewing every 500 ms
# with 20 s certificates: `node promote w1` makes w1 a raft manager that
# answers control requests; `node demote w1` makes it a worker again;
# the last manager cannot be demoted; a live worker is not removed without
# --force, and once removed it stops its cluster parts by itself.
source "$(dirname "$0")/lib.sh"
need_docker
export SWARMC_HEARTBEAT_PERIOD=500ms SWARMC_RENEW_PERIOD=500ms SWARMC_CERT_EXPIRY=20s

start_daemon m1 --executor sim
start_daemon w1 --executor sim
start_daemon w2 --executor sim
SWARMC_HOST=$m1_SOCK sw init --advertise-addr "127.0.0.1:$m1_PORT" >/dev/null || fail "init"
export SWARMC_HOST=$m1_SOCK
TOKEN=$(sw join-token -q worker) || fail "join-token"
"$SWARMC" -H "$w1_SOCK" join --token "$TOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "w1 join"
"$SWARMC" -H "$w2_SOCK" join --token "$TOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "w2 join"
ready3() { [ "$(sw node ls | grep -c ' Ready ')" = 3 ]; }
wait_until 20 "3 nodes ready" ready3
node_of() { grep -o '"node_id": *"[a-z0-9]*"' "$TMP/$1/cluster.json" | cut -d'"' -f4; }
role_of() { grep -o '"role": *"[a-z]*"' "$TMP/$1/cluster.json" | cut -d'"' -f4; }
M1=$(node_of m1); W1=$(node_of w1); W2=$(node_of w2)

log "the last manager cannot be demoted"
if out=$(sw node demote "$M1" 2>&1); then fail "demoted the last manager"; fi
echo "$out" | grep -q "last manager" || fail "unexpected error: $out"

log "promote w1: it becomes a raft manager and serves the control API"
sw node promote "$W1" >/dev/null || fail "promote"
w1_manager() { [ "$(role_of w1)" = manager ] && "$SWARMC" -H "$w1_SOCK" node ls >/dev/null 2>&1; }
wait_until 30 "w1 runs a manager" w1_manager
two_managers() { [ "$(sw node ls | grep -cE 'Leader|Reachable')" = 2 ]; }
wait_until 30 "2 managers in node ls" two_managers
"$SWARMC" -H "$w1_SOCK" service create --detach --name via-w1 "$IMAGE" sleep 1 >/dev/null ||
  fail "a write through the promoted manager failed"
sw service ls | grep -q via-w1 || fail "the write through w1 is not on m1"

log "certificates renew (20 s life: renewed after 10-16 s)"
renewed() { grep -q "certificate renewed" "$TMP/w2/daemon.log"; }
wait_until 30 "w2 renewed its certificate" renewed

log "demote w1: it is a worker again and raft has one member"
sw node demote "$W1" >/dev/null || fail "demote"
w1_worker() { [ "$(role_of w1)" = worker ] && ! "$SWARMC" -H "$w1_SOCK" node ls >/dev/null 2>&1; }
wait_until 30 "w1 is a worker" w1_worker
one_manager() { [ "$(sw node ls | grep -cE 'Leader|Reachable|Unreachable')" = 1 ]; }
wait_until 30 "1 manager in node ls" one_manager
w1_ready() { sw node ls | grep "^${W1:0:12}" | grep -q ' Ready '; }
wait_until 30 "w1 ready as a worker" w1_ready

log "a live node is not removed without --force; once removed it stops"
if out=$(sw node rm "$W2" 2>&1); then fail "removed a live node without --force"; fi
echo "$out" | grep -q -- "--force" || fail "unexpected error: $out"
if out=$(sw node rm "$M1" 2>&1); then fail "removed a manager"; fi
echo "$out" | grep -q "manager" || fail "unexpected error: $out"
sw node rm --force "$W2" >/dev/null || fail "node rm --force"
w2_stopped() { grep -q "removed from the cluster" "$TMP/w2/daemon.log" && [ ! -f "$TMP/w2/cluster.json" ]; }
wait_until 30 "w2 stopped its cluster parts" w2_stopped
sw node ls | grep -q "^${W2:0:12}" && fail "w2 still listed"
log "ok"
