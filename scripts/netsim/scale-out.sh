#!/usr/bin/env bash
# The scale-out benchmark: training runs whose workers sit on other (simulated) hosts, for every combination of
#
#   --workers "1 2 4 8"       worker hosts, each with --envs-per-worker envs
#   --rtt "0.2 2 20"          round-trip time of every link, ms
#   --rate "1000 100"         link rate, Mbit/s
#   --modes "central workers impala impact"
#                             central: PPO, the learner steps the envs in lockstep (central inference);
#                             workers: PPO with the workers acting (APS, --sync); impala / impact: workers act and stream
#   --sync "always 0.05"      APS settings for the modes where workers act (always, never, every:N, τ or τ:L)
#   --train-arg ARG           one more flag for examples/Train, repeatable (e.g. --train-arg --max-credit --train-arg 32)
#   --env CartPole-v1 --steps 100000 --central-steps STEPS --envs-per-worker 8 --seed 1
#                             (--central-steps: env steps of the central runs, which wait a round trip per step)
#
# Each run: scripts/netsim/netsim.sh up, examples/Train on the learner host (--workers-external, gRPC: the hosts are
# "remote"), one worker process per worker host dialling its link's address, then down. One JSON line per run on
# stdout and appended to --out (default docs/results/scale-out/runs.jsonl): env-steps/s consumed by the learner
# (steady state: from 20% of the steps to the end), learner busy fraction, pushes and push bytes, mean policy lag,
# the final mean-20 return, bytes on the links each way, and the TCP round trip measured before the run. Root only.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

workers_list="1 2 4 8" rtt_list="0.2 2 20" rate_list="1000 100" modes="central workers impala impact" sync_list="always 0.05"
env=CartPole-v1 steps=100000 central_steps="" per=8 seed=1 out="$root/docs/results/scale-out/runs.jsonl" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers_list="$2"; shift 2 ;;
    --rtt) rtt_list="$2"; shift 2 ;;
    --rate) rate_list="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    --sync) sync_list="$2"; shift 2 ;;
    --env) env="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --central-steps) central_steps="$2"; shift 2 ;;
    --envs-per-worker) per="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --train-arg) extra+=("$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "scale-out: unknown argument '$1'" >&2; usage ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "scale-out: the simulated hosts are network namespaces, which need root" >&2; exit 2; }
for m in $modes; do case "$m" in central|workers|impala|impact) ;; *) echo "scale-out: unknown mode '$m' (central, workers, impala, impact)" >&2; exit 2 ;; esac; done

train="$root/examples/Train/bin/Release/net10.0/Train.dll"
worker="$root/ClusterEnv.Worker/bin/Release/net10.0/ClusterEnv.Worker.dll"
if [ ! -f "$train" ] || [ ! -f "$worker" ]; then
  echo "scale-out: building Train and the worker (Release) ..." >&2
  dotnet build "$root/examples/Train" -c Release -v quiet -nologo >&2 || exit 1
  dotnet build "$root/ClusterEnv.Worker" -c Release -v quiet -nologo >&2 || exit 1
fi
mkdir -p "$(dirname "$out")"
scratch=$(mktemp -d)
trap 'bash "$here/netsim.sh" down --name so >/dev/null 2>&1; rm -rf "$scratch"' EXIT
head -c 24 /dev/urandom | base64 > "$scratch/token"

run_one() { # workers rtt rate mode sync
  local w=$1 rtt=$2 rate=$3 mode=$4 sync=$5 run="$scratch/run-$RANDOM" algo args=() total=$steps
  case "$mode" in
    central) algo=ppo; total=${central_steps:-$steps} ;;
    workers) algo=ppo; args+=(--sync "$sync") ;;
    impala|impact) algo=$mode; args+=(--sync "$sync") ;;
  esac
  bash "$here/netsim.sh" up --name so --workers "$w" --rtt-ms "$rtt" --rate-mbit "$rate" >/dev/null || return 1
  local measured
  measured=$(bash "$here/netsim.sh" ping --name so | python3 -c 'import sys,json; r=[json.loads(l) for l in sys.stdin]; print(round(sum(x.get("rtt_median_ms",0) for x in r)/len(r),3))')
  rm -f "$scratch/hub"
  bash "$here/netsim.sh" learner --name so dotnet "$train" --algo "$algo" --env "$env" --seed "$seed" --total-steps "$total" \
    --workers-external "$w" --host 0.0.0.0 --token-file "$scratch/token" --hub-url-file "$scratch/hub" --transport grpc \
    --num-envs $((w * per)) --checkpoint-every 0 --log-every 0.25 --out "$run" "${args[@]}" "${extra[@]}" >"$scratch/train.log" 2>&1 &
  local learner=$!
  for _ in $(seq 600); do [ -s "$scratch/hub" ] && break; kill -0 $learner 2>/dev/null || break; sleep 0.1; done
  local port pids=()
  port=$(sed -E 's#.*:([0-9]+)/?$#\1#' "$scratch/hub" 2>/dev/null)
  for i in $(seq "$w"); do
    bash "$here/netsim.sh" worker "$i" --name so dotnet "$worker" --hub "http://10.78.$i.1:$port" --env "$env" --num-envs "$per" \
      --worker-id "host$(printf %03d "$i")" --token-file "$scratch/token" >"$scratch/worker-$i.log" 2>&1 &
    pids+=($!)
  done
  wait $learner; local rc=$?
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  local links="$scratch/links.json"
  cp "/run/clusterenv-netsim/so/stats.json" "$links" 2>/dev/null || echo '{}' > "$links"
  bash "$here/netsim.sh" down --name so >/dev/null
  if [ $rc -ne 0 ] || [ ! -f "$run/metrics.csv" ]; then
    echo "scale-out: the run ($mode, $w workers, rtt $rtt, $rate Mbit, sync $sync) failed with exit code $rc:" >&2
    tail -5 "$scratch/train.log" >&2
    return 1
  fi
  python3 - "$run/metrics.csv" "$links" "$env" "$mode" "$sync" "$w" "$per" "$rtt" "$measured" "$rate" "$total" "$seed" "${extra[*]:-}" <<'PY' | tee -a "$out"
import csv, json, sys
metrics, links, env, mode, sync, w, per, rtt, measured, rate, steps, seed, train_args = sys.argv[1:]
rows = list(csv.DictReader(open(metrics)))
num = lambda r, k: float(r[k]) if r.get(k) not in (None, "") else 0.0
last = rows[-1]
start = next((r for r in rows if num(r, "global_step") >= 0.2 * num(last, "global_step")), rows[0])
span = num(last, "seconds") - num(start, "seconds")
sps = (num(last, "global_step") - num(start, "global_step")) / span if span > 0 else num(last, "SPS")
wire = json.load(open(links))
words = train_args.split()
max_credit = words[words.index("--max-credit") + 1] if "--max-credit" in words[:-1] else "32"  # Train's default
down = sum(v["bytes"] for k, v in wire.items() if k.startswith("l"))
up = sum(v["bytes"] for k, v in wire.items() if k.startswith("w"))
print(json.dumps({
    "bench": "scale-out", "env": env, "mode": mode, "sync": sync if mode != "central" else None,
    "credit": None if mode in ("central", "workers") else f"2-{max_credit}",
    "workers": int(w), "envs_per_worker": int(per), "rtt_ms": float(rtt), "rtt_measured_ms": float(measured), "rate_mbit": float(rate),
    "steps": int(num(last, "global_step")), "seconds": round(num(last, "seconds"), 2), "env_steps_per_sec": round(sps, 1),
    "learner_busy_fraction": round(num(last, "learner_busy_fraction"), 3),
    "pushes": int(num(last, "total_pushes")), "push_bytes": int(num(last, "bytes_pushed")),
    "mean_policy_lag": round(num(last, "mean_policy_lag"), 3), "mean_return_20": round(num(last, "mean_return_20"), 2),
    "link_bytes_to_workers": down, "link_bytes_to_learner": up, "seed": int(seed), "train_args": train_args,
}))
PY
}

failures=0
for rate in $rate_list; do for rtt in $rtt_list; do for w in $workers_list; do for mode in $modes; do
  if [ "$mode" = central ]; then run_one "$w" "$rtt" "$rate" central - || failures=$((failures + 1))
  else for s in $sync_list; do run_one "$w" "$rtt" "$rate" "$mode" "$s" || failures=$((failures + 1)); done; fi
done; done; done; done
[ $failures -eq 0 ] || { echo "scale-out: $failures run(s) failed" >&2; exit 1; }
