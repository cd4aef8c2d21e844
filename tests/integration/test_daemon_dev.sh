#!/usr/bin/env bash
# `swarmc daemon --dev` with no -H, SWARMC_HOST or --state-dir: a fresh
# single-node cluster whose state and control socket live in a new temporary
# directory, never in /var/lib/swarmc or /run (the CLI used to fill in those
# defaults before the daemon could pick a temporary dir).
source "$(dirname "$0")/lib.sh"
unset SWARMC_HOST
before=$(ls -d /tmp/swarmc-dev.* 2>/dev/null | sort || true)
had_default=$([ -e /var/lib/swarmc ] && echo yes || echo no)
"$SWARMC" daemon --dev --executor sim --listen "127.0.0.1:$(free_port)" >"$TMP/dev.log" 2>&1 &
DEV_PID=$!
PIDS+=("$DEV_PID")
ready() { grep -q "export SWARMC_HOST=" "$TMP/dev.log"; }
wait_until 20 "the dev node to say it is ready" ready
sock=$(grep -o "export SWARMC_HOST=[^ ]*" "$TMP/dev.log" | head -1 | cut -d= -f2)
case $sock in
  /tmp/swarmc-dev.*/swarmc.sock) ;;
  *) fail "dev socket is $sock, not in a temporary dir" ;;
esac
dir=${sock%/swarmc.sock}
grep -qx "$dir" <<<"$before" && fail "dev reused an existing dir $dir"
[ "$had_default" = yes ] || [ ! -e /var/lib/swarmc ] || fail "dev wrote /var/lib/swarmc"
"$SWARMC" -H "$sock" service create --detach --name web --replicas 2 localbusybox:latest sleep 60 >/dev/null ||
  fail "create on the dev node"
two() { "$SWARMC" -H "$sock" service ls | grep -E " web " | grep -q " 2/2 "; }
wait_until 30 "2/2 on the dev node" two
kill -TERM "$DEV_PID"; wait "$DEV_PID" 2>/dev/null || true
rm -rf "$dir"
log "ok"
