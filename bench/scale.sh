#!/usr/bin/env bash
# Scale figures on ONE swarmc daemon with the simulated executor (manager and
# worker in one process; tasks are uv timers, no containers). Fleet mode is
# covered by bench/fleet.sh when `swarmc fleet` exists. Steps (one run each;
# SCALE_RUNS repeats the timed CLI calls):
#   - N replicas (SCALE_N, 10,000) from `service create` to all RUNNING, with
#     a timeline of tasks per state (service ps --format json polled back to
#     back, at least 0.5 s apart) for the plot;
#   - daemon RSS per task at N running tasks (manager + agent + sim);
#   - `service ls` with SCALE_SERVICES (300) extra services, `service ps` of
#     the N-task service;
#   - idle 30 s with N tasks: daemon CPU % of one core (/proc/PID/stat) and
#     raft entries committed (the raft index, read as the meta.version of a
#     probe service updated right before and right after the window);
#   - scale to 0 and back to N; a rolling update of the N tasks with
#     parallelism 100 (the manager's update_status started_at/completed_at).
# Writes records via rec and the timeline to $TIMELINE.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

N=${SCALE_N:-10000}
NSVC=${SCALE_SERVICES:-300}
RUNS=${SCALE_RUNS:-5}
TMO=${SCALE_TIMEOUT:-240}
IDLE=${SCALE_IDLE:-30}
TIMELINE=${TIMELINE:-/tmp/swc-bench-timeline.dat}
G="swarmc sim executor, one node"
HZ=$(getconf CLK_TCK)

over() { awk -v a="$1" -v b="$(now)" -v m="$2" 'BEGIN { exit !(b - a > m) }'; }

# states NAME: "total running line" where line is "State=count ..." of its tasks.
states() {
  swc service ps "$1" --format json 2>/dev/null | python3 -c '
import json, sys, collections
try:
    ts = json.load(sys.stdin)
except ValueError:
    ts = []
c = collections.Counter(t["CurrentState"].split(" ")[0] for t in ts if t.get("DesiredState") == "Running")
print(len(ts), c.get("Running", 0), " ".join("%s=%d" % kv for kv in sorted(c.items())))'
}

# running NAME: running/desired from service ls.
replicas() { swc service ls --format json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Name"] == sys.argv[1]:
        print(s["Replicas"].replace("/", " "))' "$1"; }

# raft_index: commit one write (label on the probe service) and return its
# raft index (the service's meta.version).
raft_index() {
  swc service update --detach --label-add "probe=$RANDOM$RANDOM" raftprobe >/dev/null 2>&1
  swc service inspect raftprobe | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["meta"]["version"])'
}

budget_ok 90 "$G" "the sim-executor scale run" || exit 0
swc_start /tmp/swb-scale --executor sim || exit 0
swc service create --detach --name raftprobe --replicas 0 "$IMAGE" true >/dev/null
sleep 1
rss0=$(rss_kib "$SWC_PID")

# --- N replicas to running, with the timeline ---------------------------------
blog "sim: $N replicas"
: >"$TIMELINE"
echo "swarmc, $N sim replicas on one node: tasks per state after service create" >"$TIMELINE.title"
t0=$(now)
swc service create --detach --name big --replicas "$N" "$IMAGE" sleep 3600 >/dev/null
done_t=
while :; do
  ts=$(now)
  read -r total run line < <(states big)
  el=$(elapsed "$t0")
  echo "$el $line" >>"$TIMELINE"
  if [ "${run:-0}" -ge "$N" ]; then done_t=$el; break; fi
  if [ "$line" != "${last_line:-}" ]; then last_line=$line; last_change=$el
  elif awk -v a="$last_change" -v b="$el" 'BEGIN { exit !(b - a > 30) }'; then
    stalled=1; break
  fi
  over "$t0" "$TMO" && break
  [ "$(left)" -lt 30 ] && break
  # at least 0.5 s between samples
  awk -v a="$ts" -v b="$(now)" 'BEGIN { d = 0.5 - (b - a); if (d > 0) system("sleep " d) }'
done
if [ -n "$done_t" ]; then
  rec "$G" "$N replicas: service create → all RUNNING" s "polled with service ps every ≥0.5 s" "$done_t"
else
  rec "$G" "$N replicas: service create → all RUNNING" s \
    "NOT converged ($([ -n "${stalled:-}" ] && echo "no change for 30 s" || echo "deadline")): last sample $(tail -n1 "$TIMELINE")" -
fi
blog "sim: converged=${done_t:-no} last: $(tail -n1 "$TIMELINE")"
sleep 2
rss1=$(rss_kib "$SWC_PID")
rec "$G" "daemon RSS with $N tasks" MiB "manager+agent+sim in one process" "$((rss1 / 1024))"
rec "$G" "daemon RSS growth per task" bytes "(RSS at N tasks - RSS before) / N" "$(((rss1 - rss0) * 1024 / N))"

# --- ls / ps ---------------------------------------------------------------------
if budget_ok 60 "$G" "service ls/ps with $NSVC services"; then
blog "sim: $NSVC services"
t0=$(now)
seq "$NSVC" | xargs -P 4 -I{} "$SWARMC" -H "$SWC_SOCK" service create --detach --name "s{}" \
  --replicas 0 "$IMAGE" true >/dev/null 2>&1
rec "$G" "create $NSVC services (0 replicas), CLI calls 4 at a time" s "" "$(elapsed "$t0")"
ls_v=() ps_v=()
for i in $(seq "$RUNS"); do
  t0=$(now); swc service ls >/dev/null; ls_v+=("$(elapsed "$t0")")
  t0=$(now); swc service ps big >/dev/null; ps_v+=("$(elapsed "$t0")")
done
rec "$G" "service ls ($((NSVC + 2)) services, $N tasks)" s "" "${ls_v[@]}"
rec "$G" "service ps of the $N-task service" s "" "${ps_v[@]}"
fi

# --- idle: CPU and raft entries ------------------------------------------------------
if budget_ok $((IDLE + 20)) "$G" "idle CPU and raft entries"; then
blog "sim: idle ${IDLE}s"
a=$(raft_index); b=$(raft_index)
c0=$(cpu_ticks "$SWC_PID"); t0=$(now)
sleep "$IDLE"
c1=$(cpu_ticks "$SWC_PID"); el=$(elapsed "$t0")
c=$(raft_index)
rec "$G" "idle with $N running tasks: daemon CPU" "% of a core" "over ${IDLE}s, /proc/PID/stat" \
  "$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v e="$el" 'BEGIN { printf "%.2f", 100 * d / hz / e }')"
rec "$G" "idle with $N running tasks: raft entries committed" entries \
  "raft index (probe meta.version) $b → $c over ${IDLE}s, minus one probe write ($((b - a)) entries)" \
  "$((c - b - (b - a)))"
fi

# --- scale to 0 and back ---------------------------------------------------------------
if budget_ok 60 "$G" "scale to 0 and back"; then
blog "sim: scale 0 and back"
t0=$(now)
swc service update --detach --replicas 0 big >/dev/null 2>&1
while :; do
  read -r r d < <(replicas big)
  [ "${r:-1}" = 0 ] && break
  over "$t0" "$TMO" && break
  [ "$(left)" -lt 20 ] && break
  sleep 0.5
done
rec "$G" "scale $N → 0: until 0 running" s "service ls polled" "$(elapsed "$t0")"
t0=$(now)
swc service update --detach --replicas "$N" big >/dev/null 2>&1
ok=
while :; do
  read -r r d < <(replicas big)
  [ "${r:-0}" -ge "$N" ] && { ok=1; break; }
  over "$t0" "$TMO" && break
  [ "$(left)" -lt 20 ] && break
  sleep 0.5
done
if [ -n "$ok" ]; then rec "$G" "scale 0 → $N: until all running" s "service ls polled" "$(elapsed "$t0")"
else rec "$G" "scale 0 → $N: until all running" s "NOT converged within ${TMO}s: $r/$N running" -; fi
fi

# --- rolling update -------------------------------------------------------------------------
if budget_ok 60 "$G" "rolling update"; then
blog "sim: rolling update"
swc service update --detach --env-add V=2 --update-parallelism 100 big >/dev/null
t0=$(now)
st=
while :; do
  st=$(swc service inspect big | python3 -c '
import json, sys, datetime
u = json.load(sys.stdin)[0].get("update_status") or {}
def ts(x):
    return datetime.datetime.strptime(x.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
if u.get("state") == "completed":
    print("%.3f" % (ts(u["completed_at"]) - ts(u["started_at"])))
elif u.get("state") not in (None, "updating"):
    print("state:" + u["state"])')
  [ -n "$st" ] && break
  over "$t0" "$TMO" && break
  [ "$(left)" -lt 20 ] && break
  sleep 1
done
case $st in
  "" | state:*) rec "$G" "rolling update of $N tasks, parallelism 100" s "did not complete: ${st:-timeout after ${TMO}s}" - ;;
  *) rec "$G" "rolling update of $N tasks, parallelism 100" s "update_status completed_at - started_at" "$st" ;;
esac
fi

swc_stop
rm -rf /tmp/swb-scale
exit 0
