#!/usr/bin/env bash
# Three managers: two join with the manager token, a write sent to a
# follower is forwarded to the leader, and after the leader is killed (-9)
# a new one is elected and the service converges again on the survivors.
source "$(dirname "$0")/lib.sh"
need_docker
export SWARMC_HEARTBEAT_PERIOD=500ms

start_daemon m1
start_daemon m2
start_daemon m3
export SWARMC_HOST=$m1_SOCK
sw init --advertise-addr "127.0.0.1:$m1_PORT" >/dev/null || fail "init"
MTOKEN=$(sw join-token -q manager) || fail "join-token manager"
"$SWARMC" -H "$m2_SOCK" join --token "$MTOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "m2 join"
"$SWARMC" -H "$m3_SOCK" join --token "$MTOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "m3 join"
managers3() { [ "$(sw node ls | grep -cE 'Leader|Reachable')" = 3 ]; }
wait_until 30 "3 managers listed" managers3

node_of() { grep -o '"node_id": *"[a-z0-9]*"' "$TMP/$1/cluster.json" | cut -d'"' -f4; }
M1=$(node_of m1); M2=$(node_of m2); M3=$(node_of m3)
# Each manager's raft id is recorded on its node (raft tunnels are checked
# against it), the bootstrap manager's included.
bound() { for n in "$M1" "$M2" "$M3"; do sw node inspect "$n" | grep -qE '^    "raft_id": [1-9]' || return 1; done; }
wait_until 30 "raft ids recorded for the 3 managers" bound

log "create through a follower (forwarded to the leader)"
"$SWARMC" -H "$m2_SOCK" service create --detach --name svc --replicas 3 --init --stop-grace-period 1s \
  "$IMAGE" sleep 3600 >/dev/null || fail "create via follower"
total() { echo $(( $(count_containers "swarmc.service.name=svc" "swarmc.node.id=$1") )); }
three() { [ $(( $(total "$M1") + $(total "$M2") + $(total "$M3") )) = 3 ]; }
wait_until 90 "3 replicas running" three

log "kill -9 the leader"
kill -9 "$m1_PID"
export SWARMC_HOST=$m2_SOCK
new_leader() { sw node ls 2>/dev/null | grep -q Leader; }
wait_until 30 "a new leader" new_leader
survivors() { [ $(( $(total "$M2") + $(total "$M3") )) = 3 ]; }
wait_until 90 "3 replicas on the surviving managers" survivors
# Containers can run before their statuses reach the new leader: wait for
# the service to say so, with a deadline.
ls33() { sw service ls | grep -E " svc " | grep -q " 3/3 "; }
wait_until 60 "service ls on the new leader to say 3/3" ls33
# No task duplicated, none lost: exactly one task desired running per slot.
slots=$(sw service ps svc --format json | python3 -c '
import json, sys
ts = [t for t in json.load(sys.stdin) if t["DesiredState"] == "Running"]
print(" ".join(sorted(t["Name"] for t in ts)))')
[ "$slots" = "svc.1 svc.2 svc.3" ] || fail "after failover the running tasks are [$slots], not one per slot"
log "ok"
