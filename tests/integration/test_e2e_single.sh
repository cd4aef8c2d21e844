#!/usr/bin/env bash
# One node, real containers: init, create, scale up and down, rolling update,
# rollback, remove (containers gone).
source "$(dirname "$0")/lib.sh"
need_docker

start_daemon n1
export SWARMC_HOST=$n1_SOCK
sw init --advertise-addr "127.0.0.1:$n1_PORT" >/dev/null || fail "init"
NODE=$(grep -o '"node_id": *"[a-z0-9]*"' "$TMP/n1/cluster.json" | cut -d'"' -f4)
sel=("swarmc.service.name=web" "swarmc.node.id=$NODE")
running() { [ "$(count_containers "${sel[@]}")" = "$1" ]; }
replicas() { sw service ls | grep -E "^[a-z0-9]+ +web " | grep -q " $1/$1 "; }

log "create 3 replicas"
sw service create --detach --name web --replicas 3 --init --stop-grace-period 2s "$IMAGE" sleep 3600 >/dev/null ||
  fail "service create"
wait_until 60 "3 containers running" running 3
wait_until 20 "service ls says 3/3" replicas 3

log "scale to 5"
sw service scale --detach web=5 >/dev/null || fail "scale up"
wait_until 60 "5 containers running" running 5
wait_until 20 "service ls says 5/5" replicas 5

log "scale to 2"
sw service scale --detach web=2 >/dev/null || fail "scale down"
wait_until 60 "2 containers running" running 2

log "rolling update with an env var, parallelism 2"
sw service update --detach --env-add DEMO=2 --update-parallelism 2 web >/dev/null || fail "update"
has_env() {
  local id n=0
  for id in $(containers "${sel[@]}"); do
    docker_api "http://localhost/v1.41/containers/$id/json" | grep -q '"DEMO=2"' || return 1
    n=$((n + 1))
  done
  [ "$n" = 2 ]
}
wait_until 60 "2 updated containers with DEMO=2" has_env
# The history keeps the old tasks: each slot has a shut-down task at the old version.
sw service ps web | grep -q Shutdown || fail "service ps shows no shut-down task after the update"

log "rollback"
sw service rollback --detach web >/dev/null || fail "rollback"
no_env() {
  local id n=0
  for id in $(containers "${sel[@]}"); do
    docker_api "http://localhost/v1.41/containers/$id/json" | grep -q '"DEMO=2"' && return 1
    n=$((n + 1))
  done
  [ "$n" = 2 ]
}
wait_until 60 "2 rolled-back containers without DEMO" no_env

log "remove"
sw service rm web >/dev/null || fail "service rm"
gone() { [ -z "$(all_containers "swarmc.node.id=$NODE")" ]; }
wait_until 60 "all containers of web removed" gone
sw service ls | grep -q " web " && fail "service still listed after rm"
log "ok"
