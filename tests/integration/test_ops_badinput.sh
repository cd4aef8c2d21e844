#!/usr/bin/env bash
# Bad input against a live cluster (one manager, simulated executor): each
# case must fail with a non-zero exit, say what is wrong on stderr, print
# nothing on stdout, and leave the cluster exactly as it was.
source "$(dirname "$0")/lib.sh"

start_daemon m1 --executor sim
export SWARMC_HOST=$m1_SOCK
sw init --advertise-addr "127.0.0.1:$m1_PORT" >/dev/null || fail "init"
sw service create -d --name web --replicas 2 -p 8080:80 busybox >/dev/null || fail "create web"
sw service create -d --name everywhere --mode global busybox >/dev/null || fail "create global"
converged() { sw service ls | grep -E "^[a-z0-9]+ +web " | grep -q " 2/2 "; }
wait_until 30 "web converged" converged
SELF=$(sw node ls -q | head -n 1)

state() {
  sw service ls -q | sort
  sw service inspect web everywhere | grep -v '"updated_at"'
  sw node ls -q | sort
  sw cluster inspect | grep -v '"updated_at"'
}
BEFORE=$(state)
n=0

# expect_fail WANTED-SUBSTRING COMMAND...: the command must fail with that
# message on stderr, nothing on stdout, and change nothing.
expect_fail() {
  local want=$1; shift
  local out err rc
  n=$((n + 1))
  out=$("$@" 2>"$TMP/err") && rc=0 || rc=$?
  err=$(cat "$TMP/err")
  [ "$rc" -ne 0 ] || fail "case $n ($*): succeeded, expected an error containing '$want'"
  [ -z "$out" ] || fail "case $n ($*): printed on stdout: $out"
  grep -qiF -- "$want" <<<"$err" || fail "case $n ($*): stderr does not mention '$want': $err"
  [ "$(state)" = "$BEFORE" ] || fail "case $n ($*): the cluster changed"
}

expect_fail "already in use" sw service create -d --name web busybox
expect_fail "8080" sw service create -d --name other -p 8080:80 busybox
expect_fail "not found" sw service update -d --env-add A=1 nosuch
expect_fail "not found" sw service scale -d nosuch=3
expect_fail "not found" sw service rm nosuch
expect_fail "not found" sw service ps nosuch
expect_fail "not found" sw service logs nosuch
expect_fail "not found" sw service rollback -d nosuch
expect_fail "previous" sw service rollback -d web
expect_fail "replicated" sw service scale -d everywhere=3
expect_fail "not found" sw node update --availability drain nosuchnode
expect_fail "not found" sw node rm nosuchnode
expect_fail "availability" sw node update --availability sideways "$SELF"
expect_fail "last manager" sw node demote "$SELF"
expect_fail "manager" sw node rm "$SELF"
expect_fail "--force" sw leave
expect_fail "already part of a cluster" sw init
expect_fail "already part of a cluster" sw join --token "$(sw join-token -q worker)" "127.0.0.1:$m1_PORT"
expect_fail "constraint" sw service create -d --name c1 --constraint 'node.flavour==big' busybox
expect_fail "replicas" sw service create -d --name c2 --replicas -1 busybox
expect_fail "replicas" sw service create -d --name c3 --replicas many busybox
expect_fail "mount" sw service create -d --name c4 --mount type=bind,target=/data busybox
expect_fail "duration" sw service create -d --name c5 --restart-delay 5x busybox
expect_fail "8080" sw service update -d --publish-add 8080:81 everywhere
expect_fail "unknown flag" sw service create -d --name c6 --frobnicate busybox
expect_fail "/nonexistent/dir/x.db" sw cluster backup /nonexistent/dir/x.db
expect_fail "heartbeat" sw cluster update --dispatcher-heartbeat 1ms
expect_fail "--task-history-limit" sw cluster update --task-history-limit -5
log "$n bad inputs refused with their message, nothing changed"

# A second daemon: a wrong token and an unreachable manager are refused.
start_daemon w1 --executor sim
TOKEN=$(sw join-token -q worker)
BEFORE_NODES=$(sw node ls -q | sort)
if out=$("$SWARMC" -H "$w1_SOCK" join --token "${TOKEN%?????}zzzzz" "127.0.0.1:$m1_PORT" 2>&1); then
  fail "join with a wrong token succeeded"
fi
grep -qi "token" <<<"$out" || fail "wrong token: message does not mention the token: $out"
if out=$("$SWARMC" -H "$w1_SOCK" join --token "$TOKEN" "127.0.0.1:1" 2>&1); then
  fail "join to an unreachable manager succeeded"
fi
grep -qiE "reach|connect" <<<"$out" || fail "unreachable manager: unclear message: $out"
[ "$(sw node ls -q | sort)" = "$BEFORE_NODES" ] || fail "a refused join added a node"

# A rotated-out token is refused; the new one works.
sw join-token --rotate worker >/dev/null || fail "rotate the worker token"
NEW=$(sw join-token -q worker)
[ "$NEW" != "$TOKEN" ] || fail "rotation did not change the token"
if out=$("$SWARMC" -H "$w1_SOCK" join --token "$TOKEN" "127.0.0.1:$m1_PORT" 2>&1); then
  fail "join with a rotated-out token succeeded"
fi
grep -qi "rotated" <<<"$out" || fail "rotated token: message does not say so: $out"
[ "$(sw node ls -q | sort)" = "$BEFORE_NODES" ] || fail "a join with a rotated-out token added a node"
"$SWARMC" -H "$w1_SOCK" join --token "$NEW" "127.0.0.1:$m1_PORT" >/dev/null || fail "join with the new token"
log "ok"
