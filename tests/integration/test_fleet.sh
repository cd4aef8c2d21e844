#!/usr/bin/env bash
# Fleet mode against a real manager daemon (sim executor, no Docker): a
# fleet with a wrong token is refused; 200 simulated nodes join and get
# sessions, a 1000-replica service converges on them, the fleet stops
# cleanly on SIGTERM and the manager then marks its nodes Down.
source "$(dirname "$0")/lib.sh"
export SWARMC_HEARTBEAT_PERIOD=500ms
NODES=200
REPLICAS=1000

start_daemon m1 --executor sim
export SWARMC_HOST=$m1_SOCK
sw init --advertise-addr "127.0.0.1:$m1_PORT" >/dev/null || fail "init"
TOKEN=$(sw join-token -q worker) || fail "join-token"

log "a fleet with a wrong secret is refused"
BAD=${TOKEN%-*}-$(printf %s "${TOKEN##*-}" | tr a-z2-7 b-z2-7a)
if timeout 20 "$SWARMC" fleet --token "$BAD" --nodes 3 "127.0.0.1:$m1_PORT" >"$TMP/bad.out" 2>"$TMP/bad.err"; then
  fail "a fleet with a wrong token ran"
fi
grep -q "invalid join token" "$TMP/bad.err" || fail "no join token error: $(cat "$TMP/bad.err")"

log "start $NODES simulated nodes"
mkdir -p "$TMP/fleet"
"$SWARMC" fleet --token "$TOKEN" --nodes "$NODES" --start-delay 5ms "127.0.0.1:$m1_PORT" \
  >"$TMP/fleet.out" 2>"$TMP/fleet/daemon.log" &
FLEET_PID=$!
PIDS+=("$FLEET_PID")
fleet_up() { grep -q "fleet: $NODES nodes up" "$TMP/fleet.out"; }
wait_until 30 "the fleet reports $NODES nodes up" fleet_up
log "$(cat "$TMP/fleet.out")"
count_nodes() { [ "$(sw node ls | grep -c " $2 ")" = "$1" ]; }
wait_until 10 "node ls shows $((NODES + 1)) Ready nodes" count_nodes $((NODES + 1)) Ready
[ "$(sw node ls | grep -c ' fleet-[0-9]* ')" = "$NODES" ] || fail "fleet hostnames missing"

log "create $REPLICAS replicas"
sw service create --detach --name web --replicas "$REPLICAS" sim:1 >/dev/null || fail "service create"
replicas() { sw service ls | grep -E " web " | grep -q " $REPLICAS/$REPLICAS "; }
end=$(($(date +%s) + 30))
until replicas; do
  if [ "$(date +%s)" -ge "$end" ]; then
    sw service ls >&2 || true
    sw service ps web | awk 'NR > 1 {print $5, $6}' | sort | uniq -c >&2 || true
    fail "timed out after 30s waiting for: service ls says $REPLICAS/$REPLICAS"
  fi
  sleep 0.2
done
used=$(sw service ps web | grep " Running " | awk '{print $4}' | sort -u | grep -c '^fleet-' || true)
log "tasks spread over $used fleet nodes"
[ "$used" -ge $((NODES / 2)) ] || fail "tasks on only $used fleet nodes"

log "stop the fleet: its nodes go Down"
kill -TERM "$FLEET_PID"
rc=0
wait "$FLEET_PID" || rc=$?
[ "$rc" = 0 ] || fail "fleet exited with $rc on SIGTERM: $(tail -5 "$TMP/fleet/daemon.log")"
wait_until 20 "node ls shows $NODES Down nodes" count_nodes "$NODES" Down
log "ok"
