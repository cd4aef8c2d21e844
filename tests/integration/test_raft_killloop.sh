#!/usr/bin/env bash
# Three managers (simulated executor) under a steady stream of writes; the
# leader is killed with -9 every few seconds and restarted. Afterwards every
# write that was acknowledged must be present, identical, on every manager
# (each manager answers `service ls` from its own replica of the store).
source "$(dirname "$0")/lib.sh"
export SWARMC_HEARTBEAT_PERIOD=500ms

for m in m1 m2 m3; do start_daemon $m --executor sim; done
SWARMC_HOST=$m1_SOCK sw init --advertise-addr "127.0.0.1:$m1_PORT" >/dev/null || fail "init"
MTOKEN=$(SWARMC_HOST=$m1_SOCK sw join-token -q manager)
for m in m2 m3; do
  eval "sock=\$${m}_SOCK"
  "$SWARMC" -H "$sock" join --token "$MTOKEN" "127.0.0.1:$m1_PORT" >/dev/null || fail "$m join"
done
three() { [ "$(SWARMC_HOST=$m1_SOCK sw node ls | grep -cE 'Leader|Reachable')" = 3 ]; }
wait_until 30 "3 managers" three

sock_of() { eval "echo \$${1}_SOCK"; }
leader() {
  local m
  for m in m1 m2 m3; do
    "$SWARMC" -H "$(sock_of $m)" node ls 2>/dev/null | grep -q '\* .*Leader' && { echo $m; return 0; }
  done
  return 1
}

# Writes go to any live manager (followers forward); only acknowledged ones count.
ACKED=()
write_some() {
  local k=$1 i m
  for i in 1 2 3 4 5; do
    for m in m1 m2 m3; do
      if "$SWARMC" -H "$(sock_of $m)" service create -d --name "w$k-$i" --replicas 0 busybox >/dev/null 2>&1; then
        ACKED+=("w$k-$i")
        break
      fi
    done
  done
}

for round in 1 2 3; do
  write_some "$round"
  L=$(leader) || fail "no leader before kill $round"
  log "round $round: ${#ACKED[@]} writes acknowledged; killing leader $L"
  eval "kill -9 \$${L}_PID"
  write_some "$round-after"
  restart_daemon "$L" --executor sim
  has_leader() { leader >/dev/null; }
  wait_until 30 "a leader after kill $round" has_leader
done
write_some final

want=$(printf '%s\n' "${ACKED[@]}" | sort)
for m in m1 m2 m3; do
  same() { [ "$("$SWARMC" -H "$(sock_of $m)" service ls --format json 2>/dev/null |
    python3 -c 'import json,sys; print("\n".join(sorted(s["Name"] for s in json.load(sys.stdin))))')" = "$want" ]; }
  wait_until 30 "every acknowledged write on $m" same
done
ids() { "$SWARMC" -H "$(sock_of $1)" service ls -q --no-trunc | sort; }
[ "$(ids m1)" = "$(ids m2)" ] && [ "$(ids m2)" = "$(ids m3)" ] || fail "managers disagree on service ids"
log "ok: ${#ACKED[@]} acknowledged writes present and identical on 3 managers after 3 leader kills"
