#!/usr/bin/env bash
# Three daemons on one Docker engine (1 manager + 2 workers, told apart by
# the node-id label): join with a token, spread, drain moves tasks, a worker
# killed with -9 has its tasks moved after the heartbeat timeout, a wrong
# token is refused.
source "$(dirname "$0")/lib.sh"
need_docker
export SWARMC_HEARTBEAT_PERIOD=500ms

start_daemon m1
start_daemon w1
start_daemon w2
SWARMC_HOST=$m1_SOCK sw init --advertise-addr "127.0.0.1:$m1_PORT" >/dev/null || fail "init"
export SWARMC_HOST=$m1_SOCK
TOKEN=$(sw join-token -q worker) || fail "join-token"

log "a wrong token is refused, and nothing changes"
# change the last character (to one it is not: a token ending in x once made
# the "wrong" token the right one)
case ${TOKEN: -1} in x) BAD=${TOKEN%?}y ;; *) BAD=${TOKEN%?}x ;; esac
[ "$BAD" != "$TOKEN" ] || fail "the wrong token equals the token"
if out=$("$SWARMC" -H "$w1_SOCK" join --token "$BAD" "127.0.0.1:$m1_PORT" 2>&1); then
  fail "join with a wrong token succeeded"
fi
echo "$out" | grep -qi "token" || fail "wrong-token error does not mention the token: $out"
[ "$(sw node ls -q | wc -l)" = 1 ] || fail "a node was added by a refused join"

log "two workers join"
"$SWARMC" -H "$w1_SOCK" join --token "$TOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "w1 join"
"$SWARMC" -H "$w2_SOCK" join --token "$TOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "w2 join"
ready3() { [ "$(sw node ls | grep -c ' Ready ')" = 3 ]; }
wait_until 20 "3 nodes ready" ready3
node_of() { grep -o '"node_id": *"[a-z0-9]*"' "$TMP/$1/cluster.json" | cut -d'"' -f4; }
M1=$(node_of m1); W1=$(node_of w1); W2=$(node_of w2)

log "6 replicas spread over 3 nodes"
sw service create --detach --name app --replicas 6 --init --stop-grace-period 1s "$IMAGE" sleep 3600 >/dev/null ||
  fail "create"
on() { [ "$(count_containers "swarmc.service.name=app" "swarmc.node.id=$1")" = "$2" ]; }
spread() { on "$M1" 2 && on "$W1" 2 && on "$W2" 2; }
wait_until 90 "2 containers on each node" spread

log "drain w1: its tasks move"
sw node update --availability drain "$W1" >/dev/null || fail "drain"
drained() { on "$W1" 0 && [ $(( $(count_containers "swarmc.service.name=app" "swarmc.node.id=$M1") + $(count_containers "swarmc.service.name=app" "swarmc.node.id=$W2") )) = 6 ]; }
wait_until 90 "w1 empty and 6 running elsewhere" drained
sw node update --availability active "$W1" >/dev/null || fail "activate"

log "kill -9 w2: its tasks move after the heartbeat timeout"
kill -9 "$w2_PID"
w2_down() { sw node ls | grep "^${W2:0:12}" | grep -q Down; }
wait_until 30 "w2 marked down" w2_down
# The killed daemon's containers keep running (the engine owns them); what
# counts is that 6 tasks run on live nodes.
moved() {
  [ $(( $(count_containers "swarmc.service.name=app" "swarmc.node.id=$M1") + $(count_containers "swarmc.service.name=app" "swarmc.node.id=$W1") )) = 6 ]
}
wait_until 90 "6 tasks running on m1 and w1" moved
log "a manager may not leave without --force; a worker leaves and takes its containers down"
if out=$(sw leave 2>&1); then fail "manager left without --force"; fi
echo "$out" | grep -q -- "--force" || fail "manager leave refusal does not mention --force: $out"
"$SWARMC" -H "$w1_SOCK" leave >/dev/null || fail "w1 leave"
[ -z "$(all_containers "swarmc.node.id=$W1")" ] || fail "w1 still has containers after leave"
w1_down() { sw node ls | grep "^${W1:0:12}" | grep -q Down; }
wait_until 30 "w1 marked down after leaving" w1_down
on_m1() { on "$M1" 6; }
wait_until 90 "all 6 tasks on m1" on_m1
log "ok"
