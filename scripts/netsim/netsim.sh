#!/usr/bin/env bash
# A multi-host network in miniature: a learner host and N worker hosts as network namespaces on this machine, each
# worker joined to the learner by its own point-to-point link with a round-trip time, jitter, loss and rate.
#
#   scripts/netsim/netsim.sh up --workers N [--rtt-ms 2] [--jitter-ms 0] [--loss 0] [--rate-mbit 0] [--mtu 9000] [--name ce]
#   scripts/netsim/netsim.sh down [--name ce]            remove the namespaces, links and emulator (also after a crash)
#   scripts/netsim/netsim.sh learner [--name ce] CMD...  run CMD on the learner host (namespace NAME-learner)
#   scripts/netsim/netsim.sh worker I [--name ce] CMD... run CMD on worker host I (1..N; namespace NAME-wI)
#   scripts/netsim/netsim.sh addr I [--name ce]          the learner's address as worker I reaches it (10.78.I.1)
#   scripts/netsim/netsim.sh ping [--name ce]            measured TCP round trip on every link (JSON lines)
#   scripts/netsim/netsim.sh stats [--name ce]           packets, bytes and drops each way per link (JSON, updated each second)
#
# Links are TUN pairs forwarded by linkemu.py (user space: this kernel has no sch_netem). Traffic stays inside the
# namespaces: the learner host has no route anywhere but its links and its own loopback. Root only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "netsim: $*" >&2; exit 2; }

[ $# -ge 1 ] || usage
cmd="$1"; shift
name=ce workers="" rtt=0 jitter=0 loss=0 rate=0 mtu=9000 index=""
case "$cmd" in worker|addr) [ $# -ge 1 ] || usage; index="$1"; shift ;; esac
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --rtt-ms) rtt="$2"; shift 2 ;;
    --jitter-ms) jitter="$2"; shift 2 ;;
    --loss) loss="$2"; shift 2 ;;
    --rate-mbit) rate="$2"; shift 2 ;;
    --mtu) mtu="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) [ "$cmd" = learner ] || [ "$cmd" = worker ] && break; die "unknown argument '$1'" ;;
  esac
done
[[ "$name" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "--name '$name' must be 1-8 lowercase letters or digits, starting with a letter"
state="/run/clusterenv-netsim/$name"
learner_ns="$name-learner"
[ "$(id -u)" -eq 0 ] || die "network namespaces need root (run as root, or under sudo)"

count_workers() { ls /var/run/netns 2>/dev/null | grep -c "^$name-w[0-9]*$" || true; }

down() {
  if [ -f "$state/linkemu.pid" ]; then
    kill -TERM "$(cat "$state/linkemu.pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$state/linkemu.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  for ns in $(ls /var/run/netns 2>/dev/null | grep -E "^$name-(learner|w[0-9]+)$" || true); do
    # Stop anything still running on that host, then remove it (its devices go with it).
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$state"
}

case "$cmd" in
  up)
    [[ "$workers" =~ ^[1-9][0-9]*$ ]] && [ "$workers" -le 250 ] || die "--workers '$workers' must be 1..250"
    for pair in "rtt-ms:$rtt" "jitter-ms:$jitter" "rate-mbit:$rate"; do
      [[ "${pair#*:}" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--${pair%%:*} '${pair#*:}' must be a number >= 0"
    done
    [[ "$loss" =~ ^0([.][0-9]+)?$ ]] || die "--loss '$loss' must be a probability in [0, 1), e.g. 0.01"
    [[ "$mtu" =~ ^[0-9]+$ ]] && [ "$mtu" -ge 576 ] && [ "$mtu" -le 65535 ] || die "--mtu '$mtu' must be 576..65535"
    command -v python3 >/dev/null || die "python3 is needed for the link emulator"
    [ -c /dev/net/tun ] || die "/dev/net/tun is missing: the kernel has no TUN support"
    down
    mkdir -p "$state"
    trap 'echo "netsim: setting up failed; tearing down" >&2; down' ERR
    ip netns add "$learner_ns"
    ip -n "$learner_ns" link set lo up
    links=()
    for i in $(seq "$workers"); do
      ns="$name-w$i"
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      ip -n "$learner_ns" tuntap add dev "l$i" mode tun
      ip -n "$ns" tuntap add dev "w$i" mode tun
      ip -n "$learner_ns" addr add "10.78.$i.1" peer "10.78.$i.2" dev "l$i"
      ip -n "$ns" addr add "10.78.$i.2" peer "10.78.$i.1" dev "w$i"
      ip -n "$learner_ns" link set "l$i" mtu "$mtu" up
      ip -n "$ns" link set "w$i" mtu "$mtu" up
      links+=(--link "$learner_ns:l$i:$ns:w$i")
    done
    rm -f "$state/ready"
    setsid python3 "$here/linkemu.py" "${links[@]}" --rtt-ms "$rtt" --jitter-ms "$jitter" --loss "$loss" --rate-mbit "$rate" \
      --stats "$state/stats.json" --ready "$state/ready" >"$state/linkemu.log" 2>&1 &
    echo $! > "$state/linkemu.pid"
    for _ in $(seq 100); do [ -f "$state/ready" ] && break; kill -0 "$(cat "$state/linkemu.pid")" 2>/dev/null || break; sleep 0.1; done
    [ -f "$state/ready" ] || { cat "$state/linkemu.log" >&2; false; }
    printf '{"workers": %s, "rtt_ms": %s, "jitter_ms": %s, "loss": %s, "rate_mbit": %s, "mtu": %s}\n' "$workers" "$rtt" "$jitter" "$loss" "$rate" "$mtu" > "$state/config.json"
    trap - ERR
    echo "netsim: $workers worker host(s) up: learner $learner_ns, workers $name-w1..$name-w$workers; rtt ${rtt} ms, jitter ${jitter} ms, loss $loss, rate ${rate} Mbit/s (0: unlimited)"
    ;;
  down) down ;;
  learner)
    [ $# -ge 1 ] || die "learner: give the command to run"
    ip netns list | grep -q "^$learner_ns\b" || die "no '$learner_ns': run 'netsim.sh up' first"
    exec ip netns exec "$learner_ns" "$@" ;;
  worker)
    [ $# -ge 1 ] || die "worker $index: give the command to run"
    ip netns list | grep -q "^$name-w$index\b" || die "no worker host $index ('$name-w$index'); hosts are 1..$(count_workers)"
    exec ip netns exec "$name-w$index" "$@" ;;
  addr)
    [[ "$index" =~ ^[1-9][0-9]*$ ]] || die "addr: give a worker index 1..N"
    echo "10.78.$index.1" ;;
  ping)
    n=$(count_workers)
    [ "$n" -gt 0 ] || die "no worker hosts: run 'netsim.sh up' first"
    ip netns exec "$learner_ns" python3 "$here/rtt.py" serve 47999 & echo_pid=$!
    sleep 0.3
    for i in $(seq "$n"); do
      out=$(ip netns exec "$name-w$i" python3 "$here/rtt.py" measure "10.78.$i.1" 47999 20 2>&1) || out='{"error": "no reply"}'
      echo "{\"link\": $i, ${out#\{}"
    done
    kill "$echo_pid" 2>/dev/null; wait "$echo_pid" 2>/dev/null || true ;;
  stats)
    [ -f "$state/stats.json" ] || die "no counters for '$name' yet (is it up? they are written every second)"
    cat "$state/stats.json"; echo ;;
  *) usage ;;
esac
