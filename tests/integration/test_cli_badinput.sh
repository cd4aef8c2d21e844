#!/usr/bin/env bash
# The swarmc command line on bad input: exit code 2 and a message that says
# what is wrong and where to look, on stderr, with nothing on stdout; an
# unreachable daemon is exit code 1. Needs no daemon and no Docker.
set -u
SWARMC=${SWARMC:-}
if [[ -z "$SWARMC" || ! -x "$SWARMC" ]]; then
    echo "SWARMC not set (run through ctest)"
    exit 77
fi
export SWARMC_HOST=/nonexistent/swarmc-test.sock
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE "STDERR SUBSTRING" ARGS...
expect() {
    local code=$1 want=$2
    shift 2
    "$SWARMC" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [[ $rc -ne $code ]]; then
        echo "FAIL: swarmc $*: exit $rc, want $code"; cat "$tmp/err"; fails=$((fails + 1)); return
    fi
    if ! grep -qF -- "$want" "$tmp/err"; then
        echo "FAIL: swarmc $*: stderr lacks: $want"; cat "$tmp/err"; fails=$((fails + 1)); return
    fi
    if [[ $code -ne 0 && -s "$tmp/out" ]]; then
        echo "FAIL: swarmc $*: wrote to stdout on error"; fails=$((fails + 1))
    fi
}

expect 2 "unknown flag: --foo" service create --foo img
expect 2 "See 'swarmc service create --help'." service create --foo img
expect 2 'invalid value "5x" for --restart-delay: use a duration like 10s or 1m30s' \
    service create --restart-delay 5x img
expect 2 'invalid value "12Q" for --reserve-memory' service create --reserve-memory 12Q img
expect 2 'invalid value "-1" for --replicas' service create --replicas -1 img
expect 2 '--replicas can only be used with replicated or replicated-job mode' \
    service create --mode global --replicas 2 img
expect 2 'requires at least 1 argument: the IMAGE' service create --name web
expect 2 'port 70000 is out of range 1-65535' service create -p 8080:70000 img
expect 2 'for --mount: target is required' service create --mount type=volume,source=v img
expect 2 'invalid scale argument "web=x"' service scale web=x
expect 2 'invalid scale argument "web"' service scale web
expect 2 'flag needs an argument: --replicas' service create --replicas
expect 2 'invalid value "sleep" for --availability' node update --availability sleep n1
expect 2 'unknown command "frobnicate" for "swarmc service"' service frobnicate
expect 2 'unknown command "bogus" for "swarmc"' bogus
expect 2 'invalid filter "color=red"' service ls --filter color=red
expect 2 'invalid value "yaml" for --format' service ls --format yaml
expect 2 'requires exactly 1 argument: worker or manager' join-token nobody
expect 2 '--token is required' join 10.0.0.1:4242
expect 2 'invalid value "vm" for --executor' daemon --executor vm
expect 1 'cannot connect to the swarmc daemon at /nonexistent/swarmc-test.sock' service ls
expect 1 'is `swarmc daemon` running?' -H /nonexistent/other.sock node ls

# help goes to stdout with exit 0
"$SWARMC" service create --help >"$tmp/out" 2>&1 || { echo "FAIL: --help exit"; fails=$((fails + 1)); }
grep -q -- "--restart-delay duration" "$tmp/out" || { echo "FAIL: help lacks flags"; fails=$((fails + 1)); }
"$SWARMC" help node update >"$tmp/out" 2>&1 || { echo "FAIL: help node update"; fails=$((fails + 1)); }
grep -q -- "--availability" "$tmp/out" || { echo "FAIL: help node update lacks flags"; fails=$((fails + 1)); }

if [[ $fails -ne 0 ]]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all CLI bad-input checks passed"
