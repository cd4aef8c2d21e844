#!/usr/bin/env bash
# Fleet figures: 3 swarmc managers (sim executor, drained so tasks land only
# on fleet nodes) and `swarmc fleet` processes hosting simulated worker nodes.
#   - FLEET_NODES (1,000) nodes join; FLEET_TASKS (100,000) replicas from
#     `service create` to all RUNNING (service ls polled every 0.5 s, and
#     `service ps --states` for the plot's tasks per state); how many nodes
#     the store holds as DOWN meanwhile (the heartbeat step's, by design);
#     leader RSS per task; scale to 0 and back;
#   - `service ls` with 1,000 services (999 empty ones added) and the tasks;
#   - a FLEET_UPD (10,000)-task service: `service ps` of it, and a rolling
#     update with parallelism 100 (update_status started_at → completed_at);
#   - FLEET_HB_NODES (10,000) nodes heartbeating every 5 s, no task changes:
#     leader and follower CPU % of a core, median of 3 windows of FLEET_IDLE
#     (15) s each (/proc/PID/stat), and raft entries
#     committed (raft index = meta.version of a probe service written right
#     before and after the window, minus the probe's own entries);
#   - failover, with those nodes connected: FLEET_KILLS (20) times kill -9
#     the leader, time until a surviving manager accepts a write (a new
#     leader is up and its pipeline, dispatcher included, runs), then restart
#     the killed one.
# Order: heartbeats, failover, then the 100k run with what is left of the
# time budget. Each step has a deadline; a step that misses it (or stalls for
# 60 s) is recorded with a note.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

if [ "${FLEET_QUICK:-0}" = 1 ]; then
  : "${FLEET_NODES:=50}" "${FLEET_TASKS:=500}" "${FLEET_UPD:=200}" "${FLEET_HB_NODES:=100}"
  : "${FLEET_KILLS:=2}" "${FLEET_SERVICES:=20}" "${FLEET_IDLE:=5}"
fi
NODES=${FLEET_NODES:-1000}
TASKS=${FLEET_TASKS:-100000}
UPD=${FLEET_UPD:-10000}
HB_NODES=${FLEET_HB_NODES:-10000}
KILLS=${FLEET_KILLS:-20}
NSVC=${FLEET_SERVICES:-1000}
IDLE=${FLEET_IDLE:-15}
TMO=${FLEET_TIMEOUT:-300}
FTL=${FLEET_TIMELINE:-/tmp/swc-bench-fleet-timeline.dat}
G="fleet: 3 managers + simulated nodes"
HZ=$(getconf CLK_TCK)
BASE=${FLEET_BASE:-/tmp/swb-fl}

over() { awk -v a="$1" -v b="$(now)" -v m="$2" 'BEGIN { exit !(b - a > m) }'; }

declare -A MPID MSOCK MPORT
FLEET_PIDS=()

start_mgr() { # I [join]
  local i=$1 dir=$BASE/m$1 port
  [ "${2:-}" = keep ] || { rm -rf "$dir"; mkdir -p "$dir"; }
  port=${MPORT[$i]:-$(free_port)}
  PORTS_TAKEN="$PORTS_TAKEN $port"
  "$SWARMC" daemon --state-dir "$dir" --socket "$dir/ctl.sock" --listen "127.0.0.1:$port" \
    --advertise-addr "127.0.0.1:$port" --docker "unix://$DSOCK" --executor sim >>"$dir/daemon.log" 2>&1 &
  MPID[$i]=$!
  MSOCK[$i]=$dir/ctl.sock
  MPORT[$i]=$port
  SWC_PIDS+=("$!")
  wait_for 20 test -S "$dir/ctl.sock"
}
m() { local i=$1; shift; "$SWARMC" -H "${MSOCK[$i]}" "$@"; }

# leader_idx: index of a live manager that is the leader ("" if none known).
leader_idx() {
  local i
  for i in 1 2 3; do
    kill -0 "${MPID[$i]}" 2>/dev/null || continue
    m "$i" node ls 2>/dev/null | grep -q '^[a-z0-9]* \*.*Leader' && { echo "$i"; return; }
  done
}
any_live() { local i; for i in 1 2 3; do kill -0 "${MPID[$i]}" 2>/dev/null && { echo "$i"; return; }; done; }

replicas() { # I NAME -> "running desired"
  m "$1" service ls --format json 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Name"] == sys.argv[1]:
        print(s["Replicas"].replace("/", " "))' "$2"
}

# states_of I NAME: "New=n Pending=n ... Running=n" (the states that occur),
# from `service ps --states` (the manager counts; nothing else crosses).
states_of() {
  m "$1" service ps --states --format json "$2" 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Name"] == sys.argv[1]:
        print(" ".join("%s=%d" % (k.capitalize(), v) for k, v in s["States"].items()))' "$2"
}

# wait_running I NAME N: poll service ls until N running; prints seconds or "".
wait_running() {
  local i=$1 name=$2 n=$3 t0 r d last=-1 since
  t0=$(now); since=$t0
  local e st
  while :; do
    # with the timeline, one call gives both the states and the running
    # count (a new service: its running tasks are its running replicas)
    st=
    if [ -n "${FTL_ON:-}" ]; then
      e=$(elapsed "$t0"); st=$(states_of "$i" "$name")
    fi
    if [ -n "$st" ]; then
      r=$(echo "$st" | sed -n 's/.*Running=\([0-9]*\).*/\1/p'); r=${r:-0}
    else
      read -r r d < <(replicas "$i" "$name")
    fi
    if [ "${r:-0}" != "$last" ]; then last=${r:-0}; since=$(now)
    elif over "$since" 60; then blog "fleet: $name stuck at $last/$n running for 60 s"; return; fi
    [ -n "${FTL_ON:-}" ] && echo "$e ${st:-Running=${r:-0}}" >>"$FTL"
    [ "${r:-0}" -ge "$n" ] && { elapsed "$t0"; return; }
    over "$t0" "$TMO" && return
    [ "$(left)" -lt 30 ] && return
    sleep 0.5
  done
}

raft_index() { # I
  m "$1" service update --detach --label-add "probe=$RANDOM$RANDOM" raftprobe >/dev/null 2>&1
  m "$1" service inspect raftprobe | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["meta"]["version"])'
}

start_fleet() { # NODES: sets FLEET_PID and FLEET_LINE (its "nodes up" line); waits for it
  local n=$1 log=$BASE/fleet-$1.log
  "$SWARMC" fleet --token "$WTOKEN" --nodes "$n" \
    "127.0.0.1:${MPORT[1]},127.0.0.1:${MPORT[2]},127.0.0.1:${MPORT[3]}" >"$log" 2>&1 &
  FLEET_PID=$!
  FLEET_PIDS+=("$!")
  SWC_PIDS+=("$!")
  local t0; t0=$(now)
  until grep -q "nodes up" "$log"; do
    over "$t0" "$TMO" && { blog "fleet of $n: not all up: $(tail -n1 "$log")"; stop_fleet; return 1; }
    [ "$(left)" -lt 30 ] && { blog "fleet of $n: out of time: $(tail -n1 "$log")"; stop_fleet; return 1; }
    kill -0 "$FLEET_PID" 2>/dev/null || { blog "fleet exited: $(tail -n3 "$log")"; return 1; }
    sleep 0.5
  done
  FLEET_LINE=$(grep -m1 "nodes up" "$log")
  return 0
}
stop_fleet() {
  [ -n "${FLEET_PID:-}" ] || return 0
  kill -TERM "$FLEET_PID" 2>/dev/null
  local i; for i in $(seq 100); do kill -0 "$FLEET_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$FLEET_PID" 2>/dev/null; wait "$FLEET_PID" 2>/dev/null
}

cleanup_fleet() {
  local p
  for p in "${FLEET_PIDS[@]:-}" "${MPID[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in "${FLEET_PIDS[@]:-}" "${MPID[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done
  [ "${FLEET_KEEP:-0}" = 1 ] || rm -rf "$BASE"
}
trap cleanup_fleet EXIT

# --- cluster of 3 managers ------------------------------------------------------------
rm -rf "$BASE"; mkdir -p "$BASE"
start_mgr 1 || exit 0
m 1 init --advertise-addr "127.0.0.1:${MPORT[1]}" >/dev/null || { blog "fleet: init failed"; exit 0; }
MTOKEN=$(m 1 join-token -q manager)
WTOKEN=$(m 1 join-token -q worker)
for i in 2 3; do
  start_mgr "$i" || exit 0
  m "$i" join --token "$MTOKEN" --advertise-addr "127.0.0.1:${MPORT[$i]}" "127.0.0.1:${MPORT[1]}" >/dev/null ||
    blog "fleet: manager $i did not join"
done
for id in $(m 1 node ls -q); do m 1 node update --availability drain "$id" >/dev/null; done
m 1 service create --detach --name raftprobe --replicas 0 "$IMAGE" true >/dev/null

HB_UP=0
# FLEET_ONLY_BIG=1 skips the heartbeat and failover steps (to measure the
# 100k run alone, e.g. before/after a change).
[ "${FLEET_ONLY_BIG:-0}" = 1 ] && { HB_NODES=0; KILLS=0; }
# leader_terms: how many times any manager became leader so far (raft log line).
leader_terms() { cat "$BASE"/m*/daemon.log 2>/dev/null | grep -c 'leader for term'; }
# max_lag_ms: the largest loop turn the managers logged (loop-lag probe), in ms.
max_lag_ms() {
  cat "$BASE"/m*/daemon.log 2>/dev/null | sed -n 's/.*loop lag: max \([0-9]*\) ms.*/\1/p' |
    sort -n | tail -n1
}
# max_turn_ms leader|follower: the longest single turn logged in that role.
max_turn_ms() {
  local sel=(grep -v 'leader)'); [ "$1" = leader ] && sel=(grep 'leader)')
  cat "$BASE"/m*/daemon.log 2>/dev/null | grep 'loop lag' | "${sel[@]}" |
    sed -n 's/.*a turn of \([0-9]*\) ms.*/\1/p' | sort -n | tail -n1
}
# --- heartbeats of HB_NODES nodes ---------------------------------------------------------------
T_STEP=$(now)
if [ "$HB_NODES" = 0 ]; then :
elif ! budget_ok $((IDLE + 90)) "$G" "$HB_NODES nodes heartbeating"; then :
elif start_fleet "$HB_NODES"; then
  HB_UP=$HB_NODES
  blog "fleet: $HB_NODES nodes heartbeating"
  rec "$G" "$HB_NODES simulated nodes: join → all sessions up" s "$FLEET_LINE" \
    "$(echo "$FLEET_LINE" | sed -n 's/.* in \([0-9.]*\) s.*/\1/p')"
  sleep 5
  L=$(leader_idx); L=${L:-1}
  F=$(for i in 1 2 3; do [ "$i" != "$L" ] && kill -0 "${MPID[$i]}" 2>/dev/null && { echo "$i"; break; }; done)
  a=$(raft_index "$L"); b=$(raft_index "$L")
  lv=() fv=() t00=$(now)
  for w in 1 2 3; do
    c0=$(cpu_ticks "${MPID[$L]}"); f0=$(cpu_ticks "${MPID[${F:-$L}]}"); t0=$(now)
    sleep "$IDLE"
    c1=$(cpu_ticks "${MPID[$L]}"); f1=$(cpu_ticks "${MPID[${F:-$L}]}"); el=$(elapsed "$t0")
    lv+=("$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v e="$el" 'BEGIN { printf "%.2f", 100 * d / hz / e }')")
    fv+=("$(awk -v d=$((f1 - f0)) -v hz="$HZ" -v e="$el" 'BEGIN { printf "%.2f", 100 * d / hz / e }')")
  done
  el=$(elapsed "$t00")
  c=$(raft_index "$L")
  rec "$G" "$HB_NODES nodes heartbeating (5 s): leader CPU" "% of a core" \
    "3 windows of ${IDLE}s, /proc/PID/stat" "${lv[@]}"
  [ -n "$F" ] && rec "$G" "$HB_NODES nodes heartbeating (5 s): follower CPU" "% of a core" \
    "3 windows of ${IDLE}s (same windows as the leader's), /proc/PID/stat" "${fv[@]}"
  rec "$G" "$HB_NODES nodes heartbeating: raft entries per second" "entries/s" \
    "raft index (probe meta.version) $b → $c over ${el}s minus the probe's $((b - a))" \
    "$(awk -v n=$((c - b - (b - a))) -v e="$el" 'BEGIN { printf "%.2f", n / e }')"
else
  rec "$G" "$HB_NODES nodes heartbeating" - "fleet of $HB_NODES did not come up" -
fi
[ "$HB_NODES" = 0 ] || step_rec "fleet: $HB_NODES nodes join and heartbeat" "$T_STEP"

# --- failover -------------------------------------------------------------------------------------
if [ "$KILLS" -gt 0 ] && budget_ok 60 "$G" "failover kills"; then
T_STEP=$(now)
blog "fleet: $KILLS leader kills (with $HB_UP simulated nodes connected)"
v=()
for k in $(seq "$KILLS"); do
  budget_ok 20 "$G" "failover kills $k..$KILLS" || break
  L=$(leader_idx)
  [ -n "$L" ] || { sleep 1; L=$(leader_idx); }
  [ -n "$L" ] || { blog "failover: no leader"; break; }
  t0=$(now)
  kill -KILL "${MPID[$L]}"; wait "${MPID[$L]}" 2>/dev/null
  ok=
  while ! over "$t0" 60; do
    for i in 1 2 3; do
      [ "$i" = "$L" ] && continue
      if m "$i" service update --detach --label-add "k=$k" raftprobe >/dev/null 2>&1; then ok=1; break; fi
    done
    [ -n "$ok" ] && break
    sleep 0.05
  done
  [ -n "$ok" ] && v+=("$(elapsed "$t0")")
  start_mgr "$L" keep
  wait_for 30 sh -c "'$SWARMC' -H '${MSOCK[$L]}' node ls >/dev/null"
  sleep 1
done
if [ ${#v[@]} -gt 0 ]; then
  p99=$(printf '%s\n' "${v[@]}" | sort -g | awk '{ a[NR] = $1 } END { i = int(NR * 0.99 + 0.999); if (i > NR) i = NR; print a[i] }')
  rec "$G" "failover with $HB_UP simulated nodes: leader kill -9 → a surviving manager accepts a write (${#v[@]} kills)" s \
    "p99 $p99 s; retried every 50 ms on both survivors" "${v[@]}"
fi
step_rec "fleet: $KILLS failovers" "$T_STEP"
fi
stop_fleet
# down_nodes: "DOWN TOTAL" nodes in the store (the heartbeat step's fleet
# stays there as DOWN nodes: realistic, and the scheduler must cope).
down_nodes() { m "$L" node ls 2>/dev/null | awk 'NR > 1 { n++; if ($3 == "Down") d++ } END { print d + 0, n + 0 }'; }
# The heartbeat step's nodes are gone but still READY until they miss their
# heartbeats: wait for the managers to mark them DOWN, so the 100k step runs
# with down nodes in the store (the case it means to measure) instead of
# placing most of its tasks on nodes that are about to be found dead.
if [ "$HB_UP" -gt 0 ]; then
  T_DOWN=$(now)
  while :; do
    L=$(leader_idx); L=${L:-1}
    read -r DOWN NALL < <(down_nodes)
    [ "${DOWN:-0}" -ge "$HB_UP" ] && break
    over "$T_DOWN" 120 && { blog "fleet: only ${DOWN:-0} of $HB_UP heartbeat-step nodes down after 120 s"; break; }
    sleep 1
  done
  blog "fleet: ${DOWN:-0} of $HB_UP heartbeat-step nodes marked down after $(elapsed "$T_DOWN") s"
fi

# --- N nodes, TASKS replicas (what is left of the budget) ------------------------------------
budget_ok 90 "$G" "$TASKS replicas on $NODES nodes (and ls, scale, rolling update)" || exit 0
blog "fleet: $NODES nodes"
T_STEP=$(now)
start_fleet "$NODES" || { rec "$G" "$NODES nodes join" s "fleet did not come up" -; exit 0; }
rec "$G" "$NODES simulated nodes: join → all sessions up" s "$FLEET_LINE" \
  "$(echo "$FLEET_LINE" | sed -n 's/.* in \([0-9.]*\) s.*/\1/p')"
L=$(leader_idx); L=${L:-1}
rss0=$(rss_kib "${MPID[$L]}")
blog "fleet: $TASKS replicas"
: >"$FTL"
read -r DOWN NALL < <(down_nodes)
echo "swarmc fleet: $TASKS replicas on $NODES nodes ($DOWN down nodes in the store), 3 managers: tasks per state" >"$FTL.title"
terms0=$(leader_terms)
m "$L" service create --detach --name big --replicas "$TASKS" "$IMAGE" sleep 3600 >/dev/null
t=$(FTL_ON=1 wait_running "$L" big "$TASKS")
rec "$G" "$TASKS replicas on $NODES nodes: create → all RUNNING" s \
  "$([ -n "$t" ] || echo "NOT converged in ${TMO}s: $(tail -n1 "$FTL")")" "${t:--}"
read -r DOWN1 NALL1 < <(down_nodes)
rec "$G" "nodes in the store as DOWN during the $TASKS-replica run (at the end)" count \
  "at create $DOWN of $NALL nodes, at the end $DOWN1 of $NALL1: left by the heartbeat step, kept on purpose" \
  "$DOWN1"
rec "$G" "$TASKS replicas on $NODES nodes: leader changes during create → all RUNNING" count "" \
  "$(($(leader_terms) - terms0))"
rec "$G" "max loop turn of any manager so far (loop-lag probe; only turns over 100 ms are logged)" ms \
  "0 when the probe logged nothing" "$(max_lag_ms | grep . || echo 0)"
rec "$G" "longest loop turn while leader / while follower (loop-lag probe, > 100 ms only)" ms \
  "leader $(max_turn_ms leader | grep . || echo 0) ms, follower $(max_turn_ms follower | grep . || echo 0) ms" \
  "$(max_turn_ms leader | grep . || echo 0)"
sleep 2
rss1=$(rss_kib "${MPID[$L]}")
rec "$G" "leader RSS with $TASKS tasks" MiB "" "$((rss1 / 1024))"
rec "$G" "leader RSS growth per task" bytes "(RSS at $TASKS tasks - before) / $TASKS" "$(((rss1 - rss0) * 1024 / TASKS))"
step_rec "fleet: $NODES nodes join, $TASKS replicas" "$T_STEP"
[ "${FLEET_ONLY_BIG:-0}" = 1 ] && { stop_fleet; exit 0; }

if budget_ok 60 "$G" "service ls with $NSVC services"; then
T_STEP=$(now)
seq $((NSVC - 2)) | xargs -P 4 -I{} "$SWARMC" -H "${MSOCK[$L]}" service create --detach --name "e{}" \
  --replicas 0 "$IMAGE" true >/dev/null 2>&1
v=(); for i in 1 2 3 4 5; do t0=$(now); m "$L" service ls >/dev/null; v+=("$(elapsed "$t0")"); done
rec "$G" "service ls ($NSVC services, $TASKS tasks)" s "" "${v[@]}"
step_rec "fleet: $NSVC services, service ls" "$T_STEP"
fi

if budget_ok 90 "$G" "scale to 0 and back"; then
T_STEP=$(now)
blog "fleet: scale 0 and back"
t0=$(now); m "$L" service update --detach --replicas 0 big >/dev/null 2>&1
ok=; while :; do read -r r d < <(replicas "$L" big); [ "${r:-1}" = 0 ] && { ok=1; break; }; over "$t0" "$TMO" && break; sleep 0.5; done
rec "$G" "scale $TASKS → 0: until 0 running" s "" "$([ -n "$ok" ] && elapsed "$t0" || echo -)"
m "$L" service update --detach --replicas "$TASKS" big >/dev/null 2>&1
t=$(wait_running "$L" big "$TASKS")
rec "$G" "scale 0 → $TASKS: until all running" s "" "${t:--}"
step_rec "fleet: scale to 0 and back" "$T_STEP"
fi
m "$L" service rm big >/dev/null

if budget_ok 90 "$G" "$UPD-task service ps and rolling update"; then
T_STEP=$(now)
blog "fleet: $UPD-task service"
m "$L" service create --detach --name upd --replicas "$UPD" "$IMAGE" sleep 3600 >/dev/null
t=$(wait_running "$L" upd "$UPD")
v=(); for i in 1 2 3 4 5; do t0=$(now); m "$L" service ps upd >/dev/null; v+=("$(elapsed "$t0")"); done
rec "$G" "service ps of a $UPD-task service" s "" "${v[@]}"
m "$L" service update --detach --env-add V=2 --update-parallelism 100 upd >/dev/null
t0=$(now); st=
while :; do
  st=$(m "$L" service inspect upd | python3 -c '
import json, sys, datetime
u = json.load(sys.stdin)[0].get("update_status") or {}
ts = lambda x: datetime.datetime.strptime(x.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
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
  "" | state:*) rec "$G" "rolling update of $UPD tasks, parallelism 100" s "did not complete: ${st:-timeout}" - ;;
  *) rec "$G" "rolling update of $UPD tasks, parallelism 100" s "update_status completed_at - started_at" "$st" ;;
esac
m "$L" service rm upd >/dev/null
step_rec "fleet: $UPD-task service, ps, rolling update" "$T_STEP"
fi
stop_fleet

exit 0
