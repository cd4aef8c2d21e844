#!/usr/bin/env bash
# scripts/free-port never hands out a port next to one handed out earlier in
# the same test (SWARMC_PORTS_TAKEN): those are bound only at init, so two
# daemons started in a row once drew P and P + 1 and the second one's cluster
# port was the first one's raft port ("listen: address already in use").
set -euo pipefail
FP="$(dirname "$0")/../../scripts/free-port"
fail() { echo "FAIL: $*" >&2; exit 1; }

p0=$(python3 "$FP") || fail "no free port at all"
lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
top=$(( lo - 2 > 2048 ? lo - 2 : 2048 ))
low=$(( top - 12000 > 1024 ? top - 12000 : 1024 ))
# every cluster port of the range is taken except around p0: p0 is the only
# pair left, so an answer that ignored SWARMC_PORTS_TAKEN would almost surely
# be another one
taken=$(seq "$low" $(( top - 1 )) | awk -v p="$p0" '$1 < p - 1 || $1 > p + 2' | tr '\n' ' ')
got=$(SWARMC_PORTS_TAKEN="$taken" python3 "$FP") || fail "free-port found nothing beside $p0"
[ "$got" = "$p0" ] || fail "free-port gave $got, the only pair clear of the taken ones is $p0"

# with p0 taken too, nothing is left
if got=$(SWARMC_PORTS_TAKEN="$taken $p0" python3 "$FP" 2>/dev/null); then
  fail "free-port gave $got next to a taken port"
fi
echo ok
