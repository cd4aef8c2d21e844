#!/usr/bin/env bash
# Short CLI commands, end to end: the wall time of `swarmc version` (no
# daemon: process start, dynamic loading, one failed connect) and of
# `swarmc service ls` against a `swarmc daemon --dev --executor sim` holding
# CLI_SERVICES (100) services of one replica each, CLI_RUNS (30, at least 20)
# runs each, interleaved round by round with `/bin/true` (the cost of
# starting any process on this machine, for scale). With
# CLI_BASELINE=/path/to/an/older/swarmc the same commands of that binary run
# in the same rounds, alternating which goes first, and are recorded beside
# them (the before/after of a change on a loaded machine). With
# CLI_PS_TASKS=N (0: off) one more service of N replicas is created and
# `swarmc service ps` of it is timed the same way (issue #7: 10,000 tasks).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

NSVC=${CLI_SERVICES:-100}
NPS=${CLI_PS_TASKS:-0}
RUNS=${CLI_RUNS:-30}
[ "$RUNS" -ge 20 ] || RUNS=20
BASE=${CLI_BASELINE:-}
G="CLI commands (wall time per process)"
DIR=/tmp/swb-cli

budget_ok 60 "$G" "CLI start-up and service ls" || exit 0
[ -z "$BASE" ] || [ -x "$BASE" ] || { blog "cli: no baseline binary $BASE"; BASE=; }

# --- a dev daemon with the sim executor and NSVC services -------------------------
rm -rf "$DIR" && mkdir -p "$DIR"
port=$(free_port)
SWC_SOCK=$DIR/ctl.sock
"$SWARMC" daemon --dev --executor sim --state-dir "$DIR/state" --socket "$SWC_SOCK" \
  --listen "127.0.0.1:$port" --advertise-addr "127.0.0.1:$port" >"$DIR/daemon.log" 2>&1 &
SWC_PID=$!
SWC_PIDS+=("$SWC_PID")
if ! wait_for 20 test -S "$SWC_SOCK" || ! wait_for 30 swc_node_ready; then
  blog "cli: the dev daemon did not come up (see $DIR/daemon.log)"
  echo "{\"group\":\"$G\",\"text\":\"the dev daemon did not start: not measured\"}" >>"$REC"
  swc_stop
  exit 0
fi
seq "$NSVC" | xargs -P 4 -I{} "$SWARMC" -H "$SWC_SOCK" service create --detach --name "cli{}" \
  --replicas 1 "$IMAGE" sleep 3600 >/dev/null 2>&1
if [ "$NPS" -gt 0 ]; then
  "$SWARMC" -H "$SWC_SOCK" service create --detach --name clips --replicas "$NPS" "$IMAGE" \
    sleep 3600 >/dev/null 2>&1
  wait_for 120 sh -c "'$SWARMC' -H '$SWC_SOCK' service ls | grep -q ' $NPS/$NPS '" ||
    blog "cli: not every clips task is running yet"
fi
got=$(swc service ls -q | wc -l)
# all replicas running, so that ls shows settled counts (not required for timing)
wait_for 60 sh -c "[ \"\$('$SWARMC' -H '$SWC_SOCK' service ls | grep -c ' 1/1 ')\" -ge $NSVC ]" ||
  blog "cli: not every service shows 1/1 yet"

# --- the timed runs -----------------------------------------------------------------------
# One line per command: "<label> <ms> <ms> ...". Each round runs every command
# once, in an order that alternates, so load drifts hit them alike.
python3 - "$RUNS" "$SWC_SOCK" "$SWARMC" "$BASE" "$NPS" >"$DIR/times" <<'PY'
import os, subprocess, sys, time
runs, sock, new, base, nps = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
cmds = [("true", ["/bin/true"]),
        ("version", [new, "-H", sock + ".none", "version"]),
        ("ls", [new, "-H", sock, "service", "ls"])]
if nps:
    cmds += [("ps", [new, "-H", sock, "service", "ps", "clips"])]
if base:
    cmds += [("base_version", [base, "-H", sock + ".none", "version"]),
             ("base_ls", [base, "-H", sock, "service", "ls"])]
    if nps:
        cmds += [("base_ps", [base, "-H", sock, "service", "ps", "clips"])]
out = {k: [] for k, _ in cmds}
null = open(os.devnull, "w")
for r in range(runs):
    for k, argv in (cmds if r % 2 == 0 else cmds[::-1]):
        t = time.perf_counter()
        subprocess.run(argv, stdout=null, stderr=null)
        out[k].append((time.perf_counter() - t) * 1e3)
for k, _ in cmds:
    print(k, " ".join("%.2f" % v for v in out[k]))
PY
vals() { awk -v k="$1" '$1 == k { $1 = ""; print }' "$DIR/times"; }
show() { # LABEL KEY: print median/min/max of one command to the log
  # shellcheck disable=SC2046
  printf '%-44s median %s ms  min %s  max %s  (%s runs)\n' "$1" "$(median $(vals "$2"))" \
    "$(vals "$2" | tr ' ' '\n' | grep . | sort -g | head -n1)" \
    "$(vals "$2" | tr ' ' '\n' | grep . | sort -g | tail -n1)" "$RUNS"
}
note="$got services listed; alternating rounds with /bin/true$([ -n "$BASE" ] && echo " and the baseline binary")"
# shellcheck disable=SC2046
{
  rec "$G" "swarmc version (daemon not running)" ms "$note" $(vals version)
  rec "$G" "swarmc service ls, $NSVC services (sim executor)" ms "$note" $(vals ls)
  [ "$NPS" -gt 0 ] && rec "$G" "swarmc service ps, $NPS tasks (sim executor)" ms "$note" $(vals ps)
  rec "$G" "/bin/true (process start floor)" ms "same rounds" $(vals true)
  if [ -n "$BASE" ]; then
    rec "$G" "baseline swarmc version ($BASE)" ms "same rounds" $(vals base_version)
    rec "$G" "baseline swarmc service ls, $NSVC services ($BASE)" ms "same rounds" $(vals base_ls)
    [ "$NPS" -gt 0 ] && rec "$G" "baseline swarmc service ps, $NPS tasks ($BASE)" ms "same rounds" \
      $(vals base_ps)
  fi
}
echo "== cli: $got services, $RUNS runs each"
show "swarmc version" version
show "swarmc service ls ($NSVC services)" ls
[ "$NPS" -gt 0 ] && show "swarmc service ps ($NPS tasks)" ps
show "/bin/true" true
if [ -n "$BASE" ]; then
  show "baseline version" base_version
  show "baseline service ls ($NSVC services)" base_ls
  [ "$NPS" -gt 0 ] && show "baseline service ps ($NPS tasks)" base_ps
fi
swc_stop
rm -rf "$DIR"
