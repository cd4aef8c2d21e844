#!/usr/bin/env bash
# swarmc vs Docker swarm mode (SwarmKit inside the same private dockerd 20.10)
# on this machine, in alternating rounds (odd rounds swarmc first, even rounds
# swarm mode first; never both running at once). Per round and side:
#   1. `service create --detach --replicas 5 --init IMAGE sleep 3600` until the
#      Engine reports 5 running containers of that service (counted the same
#      way for both: /containers/json filtered by the orchestrator's service
#      label), next to the raw Engine API create+start of 5 containers from 5
#      concurrent connections of one driver process measured right before it
#      (the overhead is the difference);
#   2. N (10,000) replicas constrained to a missing node label: time until
#      `service ps -q` lists all N tasks (polled, same for both), and the
#      manager's RSS growth (swarmc daemon; dockerd for swarm mode);
#   3. `service ls` and `service ps NAME` wall time with those N tasks
#      (5 runs each, per round).
# Swarm mode is left (`swarm leave --force`) after each of its rounds.
# Env: CMP_ROUNDS (3), CMP_PENDING (10000), CMP_LSPS (5). Writes records via rec_side.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${CMP_ROUNDS:-3}
NPEND=${CMP_PENDING:-10000}
LSPS=${CMP_LSPS:-5}
G="swarmc vs swarm mode"

declare -A V # "figure|side" -> space separated values

ORDER=()
add() {
  [ -n "${V["$1|$2"]+x}" ] || ORDER+=("$1|$2")
  V["$1|$2"]="${V["$1|$2"]:-} $3"
}

# raw_create5 TAG: create+start 5 containers concurrently through the Engine
# API, configured like both orchestrators' task containers: Init, and no
# network as swarm mode does it for a task without networks (NetworkDisabled:
# no libnetwork sandbox; NetworkMode "none" alone builds one and costs about
# twice as much per start here); prints seconds. The driver is ONE process
# with 5 threads (one connection each, create then start), timed from inside,
# like the orchestrators (one process each). The former 5 shell pipelines
# (subshell + curl + grep + cut + curl per container) added 1-3 s of process
# spawning on this loaded 2-core machine: measured side by side, 5.2-6.3 s
# against 2.5-4.8 s for this driver.
raw_create5() {
  local tag=$1
  python3 - "$DSOCK" "$IMAGE" "$tag" <<'EOF'
import http.client, json, socket, sys, threading, time

sock, image, tag = sys.argv[1:4]


class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(sock)


def call(method, path, body=None):
    c = Conn("localhost")
    c.request(method, "/v1.41" + path, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


spec = json.dumps({"Image": image, "Cmd": ["sleep", "3600"], "Labels": {"swc.bench.raw": tag},
                   "NetworkDisabled": True, "HostConfig": {"Init": True, "NetworkMode": "none"}})


def one():
    status, data = call("POST", "/containers/create", spec)
    if status == 201:
        call("POST", "/containers/%s/start" % json.loads(data)["Id"])


threads = [threading.Thread(target=one) for _ in range(5)]
t0 = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
print("%.3f" % (time.monotonic() - t0))
EOF
  remove_labelled "swc.bench.raw=$tag"
}

running_ge() { [ "$(running_with_label "$1")" -ge "$2" ]; }
none_left() { [ -z "$(containers_with_label "$1")" ]; }

# run_side SIDE ROUND: the three measurements on one orchestrator.
run_side() {
  local side=$1 r=$2 name t0 t rss0 rss1 pid label n i
  if [ "$side" = swarmc ]; then
    swc_start /tmp/swb-cmp || return 1
    pid=$SWC_PID
    ctl() { swc "$@"; }
    label=swarmc.service.name
  else
    dk swarm init --advertise-addr 127.0.0.1 >/dev/null 2>&1 || { blog "swarm init failed"; return 1; }
    wait_for 30 sh -c "docker -H unix://$DSOCK node ls | grep -q Ready" || return 1
    pid=$(dockerd_pid)
    ctl() { dk "$@"; }
    label=com.docker.swarm.service.name
  fi

  # 1. five real replicas, right after 5 raw create+start (the baseline)
  RAW_T=$(raw_create5 "$side$r")
  add "create 5 replicas → 5 running" raw-api "$RAW_T"
  blog "raw API before $side round $r: 5 create+start in $RAW_T s"
  name=c5r$r
  t0=$(now)
  ctl service create --detach --name "$name" --replicas 5 --init "$IMAGE" sleep 3600 >/dev/null 2>&1
  if wait_for 120 running_ge "$label=$name" 5; then
    t=$(elapsed "$t0")
    add "create 5 replicas → 5 running" "$side" "$t"
    add "create 5 replicas: overhead above raw API create+start of 5 (same round)" "$side" \
      "$(awk -v a="$t" -v b="$RAW_T" 'BEGIN { printf "%.3f", a - b }')"
  else
    blog "$side: 5 replicas not running within 120 s"
  fi
  blog "$side round $r: 5 replicas running after ${t:-timeout} s"
  ctl service rm "$name" >/dev/null
  wait_for 120 none_left "$label=$name" || remove_labelled "$label=$name"

  # 2. N pending replicas
  name=p${NPEND}r$r
  sleep 1
  rss0=$(rss_kib "$pid")
  t0=$(now)
  ctl service create --detach --name "$name" --replicas "$NPEND" --constraint node.labels.nope==1 \
    "$IMAGE" sleep 3600 >/dev/null 2>&1
  n=0
  while :; do
    n=$(ctl service ps -q "$name" 2>/dev/null | wc -l)
    [ "$n" -ge "$NPEND" ] && break
    kill -0 "$pid" 2>/dev/null || { blog "$side: manager process $pid is gone"; break; }
    [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a > 300) }')" = 1 ] && break
    sleep 0.2
  done
  t=$(elapsed "$t0")
  if [ "$n" -ge "$NPEND" ]; then add "$NPEND unplaceable replicas → all listed as tasks" "$side" "$t"; fi
  sleep 2
  rss1=$(rss_kib "$pid")
  add "manager RSS growth with $NPEND pending tasks" "$side" "$(((rss1 - rss0) / 1024))"
  add "manager RSS growth per pending task" "$side" "$(((rss1 - rss0) * 1024 / NPEND))"
  blog "$side round $r: $n/$NPEND tasks after $t s, RSS +$(((rss1 - rss0) / 1024)) MiB"

  # 3. ls / ps with those tasks
  for i in $(seq "$LSPS"); do
    t0=$(now); ctl service ls >/dev/null; add "service ls ($NPEND tasks)" "$side" "$(elapsed "$t0")"
    t0=$(now); ctl service ps "$name" >/dev/null; add "service ps of the $NPEND-task service" "$side" "$(elapsed "$t0")"
  done

  ctl service rm "$name" >/dev/null
  if [ "$side" = swarmc ]; then
    swc_stop
    remove_labelled "swarmc.service.name"
  else
    dk swarm leave --force >/dev/null 2>&1
    remove_labelled "com.docker.swarm.service.name"
  fi
}

[ "$(dk info --format '{{.Swarm.LocalNodeState}}')" = inactive ] || dk swarm leave --force >/dev/null 2>&1

for r in $(seq "$ROUNDS"); do
  if [ "$r" -gt 2 ] && ! budget_ok 200 "$G" "rounds $r..$ROUNDS"; then break; fi
  if [ $((r % 2)) = 1 ]; then sides="swarmc swarm-mode"; else sides="swarm-mode swarmc"; fi
  for s in $sides; do run_side "$s" "$r" || blog "$s round $r failed"; done
done

for key in "${ORDER[@]}"; do
  fig=${key%|*}; side=${key#*|}
  unit=s
  case $fig in *"RSS growth with"*) unit=MiB ;; *"per pending task"*) unit=bytes ;; esac
  rec_side "$G" "$fig" "$unit" "$side" "" ${V[$key]}
done
[ "$(dk info --format '{{.Swarm.LocalNodeState}}')" = inactive ] || dk swarm leave --force >/dev/null 2>&1
exit 0
