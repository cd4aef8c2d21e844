#!/usr/bin/env bash
# `swarmc cluster restore FILE`: services made on one cluster are backed up,
# restored on a fresh daemon (a new one-manager cluster keeping every
# object), and look identical there (`service ls`, `service inspect`). A
# daemon already in a cluster refuses to restore; a file that is not a
# backup is refused without creating a cluster.
source "$(dirname "$0")/lib.sh"
need_docker

start_daemon a --executor sim
start_daemon b --executor sim
SWARMC_HOST=$a_SOCK sw init >/dev/null || fail "init a"
export SWARMC_HOST=$a_SOCK
sw service create --detach --name web --replicas 3 --env A=1 --label tier=front \
  --constraint 'node.role==manager' --limit-memory 64M "$IMAGE" sleep 3600 >/dev/null || fail "create web"
sw service create --detach --name agent --mode global "$IMAGE" sleep 3600 >/dev/null || fail "create agent"
sw service update --detach --env-add B=2 web >/dev/null || fail "update web"
# comparable views: ids, names, modes, images; inspect without versions/times
ls_view() { "$SWARMC" -H "$1" service ls | awk '{print $1, $2, $3, $5}'; }
inspect_view() {
  "$SWARMC" -H "$1" service inspect web agent |
    grep -Ev '"(version|created_at|updated_at|started_at|completed_at|timestamp|message|state)"'
}
BEFORE_LS=$(ls_view "$a_SOCK")
BEFORE_INS=$(inspect_view "$a_SOCK")
[ -n "$BEFORE_INS" ] || fail "inspect gave nothing"

log "backup on cluster a"
sw cluster backup "$TMP/backup.db" >/dev/null || fail "backup"
[ -s "$TMP/backup.db" ] || fail "no backup file"

log "a member refuses to restore"
if out=$(sw cluster restore "$TMP/backup.db" 2>&1); then fail "restore on a member succeeded"; fi
echo "$out" | grep -q "already part of a cluster" || fail "unexpected refusal: $out"

log "a file that is not a backup is refused and no cluster is made"
echo "not sqlite" >"$TMP/junk.db"
if out=$("$SWARMC" -H "$b_SOCK" cluster restore "$TMP/junk.db" 2>&1); then fail "restore of junk succeeded"; fi
echo "$out" | grep -qi "restore" || fail "junk refusal does not say restore: $out"
if "$SWARMC" -H "$b_SOCK" node ls >/dev/null 2>&1; then fail "a refused restore made a cluster"; fi

log "restore on fresh daemon b"
out=$("$SWARMC" -H "$b_SOCK" cluster restore "$TMP/backup.db" 2>&1) || fail "restore: $out"
echo "$out" | grep -q "Restored" || fail "restore output: $out"
same_ls() { [ "$(ls_view "$b_SOCK")" = "$BEFORE_LS" ]; }
wait_until 20 "service ls identical on b" same_ls
AFTER_INS=$(inspect_view "$b_SOCK")
[ "$AFTER_INS" = "$BEFORE_INS" ] || fail "inspect differs: $(diff <(echo "$BEFORE_INS") <(echo "$AFTER_INS"))"

log "b is a working cluster: the restored services run on it"
# 3/3 counts tasks wherever they run: the restored ones sit on a's node,
# which is down on b, so ask for three running on b's own node
B_NODE=$("$SWARMC" -H "$b_SOCK" node ls | awk '$2 == "*" {print $3}')
[ -n "$B_NODE" ] || fail "b's node is not in node ls"
web_running() {
  "$SWARMC" -H "$b_SOCK" service ls | grep -E '^[a-z0-9]+ +web ' | grep -q ' 3/3 ' &&
    [ "$("$SWARMC" -H "$b_SOCK" service ps web | awk -v n="$B_NODE" '$4 == n && $5 == "Running" && $6 == "Running"' | wc -l)" = 3 ]
}
if ! (wait_until 30 "web 3/3 on b" web_running); then
  "$SWARMC" -H "$b_SOCK" node ls >&2
  "$SWARMC" -H "$b_SOCK" service ps web >&2
  "$SWARMC" -H "$b_SOCK" service inspect web | grep -A6 '"update_status"' >&2
  fail "web did not run on b"
fi
"$SWARMC" -H "$b_SOCK" service scale web=1 >/dev/null || fail "scale on b"
log "ok"
